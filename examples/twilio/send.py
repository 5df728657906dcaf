import os

from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client


class Hermod(TwilioHttpClient):  # the one change: Twilio's documented custom HTTP client
    def request(self, method, url, *args, **kwargs):
        url = url.replace("https://api.twilio.com", os.environ["HERMOD_URL"])
        return super().request(method, url, *args, **kwargs)


client = Client(os.environ["TWILIO_ACCOUNT_SID"], os.environ["TWILIO_AUTH_TOKEN"], http_client=Hermod())
message = client.messages.create(
    to="+447911123456", from_=os.environ["TWILIO_FROM"], body="Your order 1001 has shipped"
)
print(message.sid, message.status)
