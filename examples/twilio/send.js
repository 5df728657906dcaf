const twilio = require("twilio");

class Hermod extends twilio.RequestClient { // the one change: Twilio's documented custom HTTP client
  request(opts) {
    return super.request({ ...opts, uri: opts.uri.replace("https://api.twilio.com", process.env.HERMOD_URL) });
  }
}

const client = twilio(process.env.TWILIO_ACCOUNT_SID, process.env.TWILIO_AUTH_TOKEN, { httpClient: new Hermod() });
client.messages
  .create({ to: "+447911123456", from: process.env.TWILIO_FROM, body: "Your order 1001 has shipped" })
  .then((message) => console.log(message.sid, message.status));
