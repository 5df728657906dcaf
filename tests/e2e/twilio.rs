//! The Twilio-compatible API: the official SDKs (PyPI `twilio`, npm `twilio`) driven
//! unchanged against a server, and the API's own rules (auth, errors, isolation,
//! rotation) with plain HTTP. Every response is checked against /openapi.json.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use hermod_sim::smsc::{Smsc, SmscConfig};

use crate::support::*;

/// Form parameters.
type Form<'a> = &'a [(&'a str, &'a str)];

const SENDER: &str = "+447700900123";
const CUSTOMER: &str = "+447911123456";

/// `hermod keys twilio --tenant`: (account SID, auth token).
fn twilio_account(data: &Path, tenant: &str) -> (String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hermod"))
        .args(["keys", "twilio", "--tenant", tenant])
        .envs(backend_env(data))
        .env("HERMOD_DATA_DIR", data)
        .env("HERMOD_LOG", "warn")
        .output()
        .expect("run hermod keys twilio");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = |p: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(p))
            .map(|v| v.trim().to_owned())
            .expect("a line")
    };
    (line("Account SID: "), line("Auth token: "))
}

/// A tenant with a sender, a Twilio account and a server: (smsc, server, dir, key,
/// account SID, auth token).
async fn setup() -> (Smsc, Server, tempfile::TempDir, String, String, String) {
    let smsc = start_smsc(SmscConfig {
        dlr_delay: Duration::from_millis(50),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (_, key) = create_key_with_tenant(dir.path(), "shop");
    assign_sender(dir.path(), "shop", SENDER, true);
    let (sid, token) = twilio_account(dir.path(), "shop");
    let server = Server::start(dir.path(), &smsc.url("hermod", "pw"), free_port());
    server.wait_healthy().await;
    (smsc, server, dir, key, sid, token)
}

/// A Twilio API call: HTTP Basic, form-encoded; checked against /openapi.json.
async fn tw(
    method: Method,
    url: &str,
    user: &str,
    pass: &str,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method.clone(), url).header(
        "authorization",
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        ),
    );
    if !form.is_empty() {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter())
            .finish();
        if method == Method::GET {
            req = reqwest::Client::new()
                .request(method.clone(), format!("{url}?{body}"))
                .basic_auth(user, Some(pass));
        } else {
            req = req
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body);
        }
    }
    let (s, v, _) = checked(method.as_str(), url, req.send().await.unwrap()).await;
    (s, v)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_twilio_api_speaks_twilio() {
    let (smsc, server, dir, key, sid, token) = setup().await;
    let base = format!("{}/2010-04-01/Accounts/{sid}", server.base);
    let messages = format!("{base}/Messages.json");

    // Created: Twilio's resource, mapped onto a Hermod message of the same id.
    let (s, m) = tw(
        Method::POST,
        &messages,
        &sid,
        &token,
        &[
            ("To", CUSTOMER),
            ("From", SENDER),
            ("Body", "Order 17 shipped"),
        ],
    )
    .await;
    assert_eq!(s, 201, "{m}");
    let msid = m["sid"].as_str().unwrap().to_owned();
    assert_eq!(m["status"], "queued");
    assert_eq!(m["num_segments"], "1");
    assert_eq!(m["direction"], "outbound-api");
    assert_eq!(m["api_version"], "2010-04-01");
    assert!(
        m["date_created"].as_str().unwrap().ends_with("+0000"),
        "{m}"
    );
    let hermod_id = format!("msg_{}", &msid[2..]);
    let (s, v, _) = call(
        Method::GET,
        &format!("{}/v1/messages/{hermod_id}", server.base),
        &key,
        None,
    )
    .await;
    assert_eq!(s, 200, "the same message through /v1: {v}");
    eventually("delivered", Duration::from_secs(20), || async {
        let (_, v) = tw(
            Method::GET,
            &format!("{base}/Messages/{msid}.json"),
            &sid,
            &token,
            &[],
        )
        .await;
        v["status"] == "delivered"
    })
    .await;
    assert_eq!(smsc.submit_count(), 1, "sent once, by SMS");

    // Too late to cancel a delivered message; too early to delete or redact a
    // scheduled one.
    let one = format!("{base}/Messages/{msid}.json");
    let (s, v) = tw(Method::POST, &one, &sid, &token, &[("Status", "canceled")]).await;
    assert_eq!((s, v["code"].as_u64()), (400, Some(30409)), "{v}");
    let (s, later) = tw(
        Method::POST,
        &messages,
        &sid,
        &token,
        &[
            ("To", CUSTOMER),
            ("From", SENDER),
            ("Body", "Later"),
            ("SendAt", "2099-01-01T00:00:00Z"),
            ("ScheduleType", "fixed"),
        ],
    )
    .await;
    assert_eq!(s, 400, "beyond 366 days: {later}");
    let at = hermod_core::rfc3339(hermod_core::now_ms() + 3_600_000);
    let (s, later) = tw(
        Method::POST,
        &messages,
        &sid,
        &token,
        &[
            ("To", CUSTOMER),
            ("From", SENDER),
            ("Body", "Later"),
            ("SendAt", &at),
            ("ScheduleType", "fixed"),
        ],
    )
    .await;
    assert_eq!(
        (s, later["status"].as_str()),
        (201, Some("scheduled")),
        "{later}"
    );
    let later_uri = format!("{base}/Messages/{}.json", later["sid"].as_str().unwrap());
    let (s, v) = tw(Method::DELETE, &later_uri, &sid, &token, &[]).await;
    assert_eq!((s, v["code"].as_u64()), (400, Some(20009)), "{v}");
    let (s, v) = tw(Method::POST, &later_uri, &sid, &token, &[("Body", "")]).await;
    assert_eq!((s, v["code"].as_u64()), (400, Some(20009)), "{v}");
    // Redacted, then deleted: gone from both APIs.
    let (s, v) = tw(Method::POST, &one, &sid, &token, &[("Body", "")]).await;
    assert_eq!(
        (s, v["body"].as_str(), v["to"].as_str()),
        (200, Some(""), Some(CUSTOMER)),
        "{v}"
    );
    let r = reqwest::Client::new()
        .delete(&one)
        .basic_auth(&sid, Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let (s, _, _) = call(
        Method::GET,
        &format!("{}/v1/messages/{hermod_id}", server.base),
        &key,
        None,
    )
    .await;
    assert_eq!(s, 404, "deleted through the Twilio API, gone from /v1");

    // Twilio's errors, with its codes.
    let cases: [(Form, u16, u64); 8] = [
        (&[("To", "12"), ("From", SENDER), ("Body", "x")], 400, 21211),
        (&[("To", CUSTOMER), ("Body", "x")], 400, 21603),
        (&[("To", CUSTOMER), ("From", SENDER)], 400, 21602),
        (
            &[("To", CUSTOMER), ("From", "+15005550006"), ("Body", "x")],
            400,
            21606,
        ),
        (
            &[
                ("To", CUSTOMER),
                ("From", SENDER),
                ("Body", &"x".repeat(1601)),
            ],
            400,
            21617,
        ),
        (
            &[
                ("To", CUSTOMER),
                ("From", SENDER),
                ("Body", "x"),
                ("StatusCallback", "http://169.254.169.254/"),
            ],
            400,
            21609,
        ),
        (
            &[
                ("To", CUSTOMER),
                ("From", SENDER),
                ("Body", "x"),
                ("Colour", "red"),
            ],
            400,
            20001,
        ),
        (
            &[
                ("To", CUSTOMER),
                ("From", SENDER),
                ("Body", "x"),
                ("SendAt", "2030-01-01T00:00:00Z"),
            ],
            400,
            20001,
        ),
    ];
    for (form, status, code) in cases {
        let (s, v) = tw(Method::POST, &messages, &sid, &token, form).await;
        assert_eq!(
            (s, v["code"].as_u64()),
            (status, Some(code)),
            "{form:?}: {v}"
        );
        assert!(
            v["more_info"]
                .as_str()
                .unwrap()
                .ends_with(&code.to_string())
        );
    }
    // A recipient who opted out is refused when the message is created.
    let (s, _, _) = call(
        Method::POST,
        &format!("{}/v1/opt-outs", server.base),
        &key,
        Some(json!({"recipient": "+447911000999"})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, v) = tw(
        Method::POST,
        &messages,
        &sid,
        &token,
        &[("To", "+447911000999"), ("From", SENDER), ("Body", "x")],
    )
    .await;
    assert_eq!((s, v["code"].as_u64()), (400, Some(21610)), "{v}");

    // Auth: wrong token, another account's SID in the path, no credentials.
    let (s, v) = tw(Method::GET, &messages, &sid, &"0".repeat(32), &[]).await;
    assert_eq!((s, v["code"].as_u64()), (401, Some(20003)), "{v}");
    let other = format!("AC{}", "0".repeat(32));
    let (s, _) = tw(
        Method::GET,
        &format!("{}/2010-04-01/Accounts/{other}/Messages.json", server.base),
        &sid,
        &token,
        &[],
    )
    .await;
    assert_eq!(s, 401);
    let r = reqwest::get(&messages).await.unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // An API key as a Twilio API key (SK… SID + its secret), within its role.
    let (s, created, _) = call(
        Method::POST,
        &format!("{}/v1/keys", server.base),
        &key,
        Some(json!({"name": "reporting", "role": "read"})),
    )
    .await;
    assert_eq!(s, 201);
    let sk = created["twilio_sid"].as_str().unwrap().to_owned();
    assert!(sk.starts_with("SK") && sk.len() == 34, "{sk}");
    let secret = created["key"]
        .as_str()
        .unwrap()
        .splitn(3, '_')
        .nth(2)
        .unwrap()
        .to_owned();
    let (s, list) = tw(Method::GET, &messages, &sk, &secret, &[]).await;
    assert_eq!(s, 200, "{list}");
    assert!(
        list["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["sid"] == later["sid"]),
        "{list}"
    );
    let (s, v) = tw(
        Method::POST,
        &messages,
        &sk,
        &secret,
        &[("To", CUSTOMER), ("From", SENDER), ("Body", "x")],
    )
    .await;
    assert_eq!(
        (s, v["code"].as_u64()),
        (403, Some(20403)),
        "a read key sends nothing: {v}"
    );
    let (s, _) = tw(Method::GET, &messages, &sk, "wrong", &[]).await;
    assert_eq!(s, 401);

    // Another tenant's credentials reach nothing of this one's.
    let (_, key_b) = create_key_with_tenant(dir.path(), "rival");
    let (s, acct_b, _) = call(
        Method::POST,
        &format!("{}/v1/twilio/account", server.base),
        &key_b,
        None,
    )
    .await;
    assert_eq!(s, 201, "{acct_b}");
    let (sid_b, token_b) = (
        acct_b["account_sid"].as_str().unwrap().to_owned(),
        acct_b["auth_token"].as_str().unwrap().to_owned(),
    );
    let (s, _) = tw(Method::GET, &messages, &sid_b, &token_b, &[]).await;
    assert_eq!(s, 401, "B's credentials on A's account");
    let b_base = format!("{}/2010-04-01/Accounts/{sid_b}", server.base);
    let (s, v) = tw(
        Method::GET,
        &format!("{b_base}/Messages/{msid}.json"),
        &sid_b,
        &token_b,
        &[],
    )
    .await;
    assert_eq!(
        (s, v["code"].as_u64()),
        (404, Some(20404)),
        "A's message under B: {v}"
    );
    let later_sid = later["sid"].as_str().unwrap();
    let (s, _) = tw(
        Method::GET,
        &format!("{b_base}/Messages/{later_sid}.json"),
        &sid_b,
        &token_b,
        &[],
    )
    .await;
    assert_eq!(s, 404, "A's live message under B");
    let (s, v) = tw(
        Method::GET,
        &format!("{b_base}/Messages.json"),
        &sid_b,
        &token_b,
        &[],
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v["messages"], json!([]), "B lists none of A's");
    let (s, v) = tw(
        Method::DELETE,
        &format!("{b_base}/Messages/{msid}.json"),
        &sid_b,
        &token_b,
        &[],
    )
    .await;
    assert_eq!(s, 404, "{v}");
    let (s, v) = tw(
        Method::GET,
        &format!("{b_base}/IncomingPhoneNumbers.json"),
        &sid_b,
        &token_b,
        &[],
    )
    .await;
    assert_eq!(
        (s, v["incoming_phone_numbers"].clone()),
        (200, json!([])),
        "A's number is not B's"
    );

    // Rotation: the old token stops working, the SID stays.
    let (s, rotated, _) = call(
        Method::POST,
        &format!("{}/v1/twilio/account", server.base),
        &key,
        None,
    )
    .await;
    assert_eq!(s, 200, "{rotated}");
    assert_eq!(rotated["account_sid"], sid.as_str());
    let new_token = rotated["auth_token"].as_str().unwrap().to_owned();
    assert_ne!(new_token, token);
    let (s, _) = tw(Method::GET, &messages, &sid, &token, &[]).await;
    assert_eq!(s, 401, "the old token");
    let (s, _) = tw(Method::GET, &messages, &sid, &new_token, &[]).await;
    assert_eq!(s, 200, "the new one");
    let (s, shown, _) = call(
        Method::GET,
        &format!("{}/v1/twilio/account", server.base),
        &key,
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert!(
        shown.get("auth_token").is_none(),
        "a token is shown only once: {shown}"
    );

    // A TwiML answer: a reply to another number is sent from the number written to; a
    // `from` naming another sender is not used.
    let port = free_port();
    let got: Posts = Default::default();
    let _twiml = twiml_receiver(
        port,
        got.clone(),
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Message from="+15005550006">hijack</Message><Message to="+447911000111">Passed on to our team</Message></Response>"#,
    );
    let (s, nums) = tw(
        Method::GET,
        &format!("{base}/IncomingPhoneNumbers.json"),
        &sid,
        &new_token,
        &[("PhoneNumber", SENDER)],
    )
    .await;
    assert_eq!(s, 200, "{nums}");
    let pn = nums["incoming_phone_numbers"][0]["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let sms_url = format!("http://127.0.0.1:{port}/sms");
    let (s, n) = tw(
        Method::POST,
        &format!("{base}/IncomingPhoneNumbers/{pn}.json"),
        &sid,
        &new_token,
        &[("SmsUrl", &sms_url)],
    )
    .await;
    assert_eq!(
        (s, n["sms_url"].as_str()),
        (200, Some(sms_url.as_str())),
        "{n}"
    );
    let (s, v) = tw(
        Method::POST,
        &format!("{base}/IncomingPhoneNumbers/{pn}.json"),
        &sid,
        &new_token,
        &[("SmsUrl", "http://10.0.0.1/sms")],
    )
    .await;
    assert_eq!(
        (s, v["code"].as_u64()),
        (400, Some(20001)),
        "an internal SmsUrl: {v}"
    );
    assert!(
        smsc.inject_mo(
            "hermod",
            "447911000222",
            "447700900123",
            "where is my order?",
            false
        ) > 0
    );
    eventually("the TwiML reply", Duration::from_secs(20), || async {
        let (_, v) = tw(
            Method::GET,
            &messages,
            &sid,
            &new_token,
            &[("To", "+447911000111")],
        )
        .await;
        v["messages"][0]["body"] == "Passed on to our team"
    })
    .await;
    {
        let posts = got.lock().unwrap();
        assert_eq!(posts.len(), 1);
        let (sig, form) = &posts[0];
        assert!(hermod_crypto::twilio::verify(
            &new_token, &sms_url, form, sig
        ));
    }
    let (_, v) = tw(
        Method::GET,
        &messages,
        &sid,
        &new_token,
        &[("PageSize", "50")],
    )
    .await;
    let bodies: Vec<&str> = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["body"].as_str())
        .collect();
    assert!(!bodies.contains(&"hijack"), "{bodies:?}");
    let reply = &v["messages"][0];
    assert_eq!(
        (reply["from"].as_str(), reply["direction"].as_str()),
        (Some(SENDER), Some("outbound-reply")),
        "{reply}"
    );

    // The routes are in the document, with Twilio's auth.
    let doc: Value = reqwest::get(format!("{}/openapi.json", server.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for p in [
        "/2010-04-01/Accounts/{AccountSid}/Messages.json",
        "/2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json",
        "/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers.json",
        "/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json",
    ] {
        assert!(
            doc["paths"][p].is_object(),
            "{p} missing from /openapi.json"
        );
    }
    assert_eq!(
        doc["paths"]["/2010-04-01/Accounts/{AccountSid}/Messages.json"]["post"]["security"],
        json!([{"twilio": []}])
    );
}

/// Where the pinned SDKs are (scripts/test installs them): None, loudly, outside CI.
pub(crate) fn sdk_tool(kind: &str) -> Option<(PathBuf, Vec<String>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let found = match kind {
        "python" => std::env::var("HERMOD_TWILIO_PYTHON")
            .ok()
            .map(PathBuf::from)
            .filter(|p| p.exists())
            .map(|p| {
                (
                    p,
                    vec![
                        root.join("tests/sdk/python/twilio_sdk.py")
                            .display()
                            .to_string(),
                    ],
                )
            }),
        _ => root
            .join("tests/sdk/node/node_modules/twilio")
            .exists()
            .then(|| {
                (
                    PathBuf::from("node"),
                    vec![
                        root.join("tests/sdk/node/twilio_sdk.mjs")
                            .display()
                            .to_string(),
                    ],
                )
            }),
    };
    if found.is_none() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("the {kind} twilio SDK is required in CI (bash scripts/test installs it)");
        }
        eprintln!(
            "\n!!! SKIPPED the {kind} twilio SDK test: not installed (bash scripts/test installs it) !!!\n"
        );
    }
    found
}

/// Runs an SDK script against a fresh server: it sends an SMS to the number when the
/// script says its `SmsUrl` is set, and wants `OK` and a clean exit.
async fn run_sdk(kind: &str) {
    let Some((program, args)) = sdk_tool(kind) else {
        return;
    };
    let (smsc, server, _dir, _key, sid, token) = setup().await;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .env("TWILIO_BASE", &server.base)
        .env("TWILIO_ACCOUNT_SID", &sid)
        .env("TWILIO_AUTH_TOKEN", &token)
        .env("TWILIO_FROM", SENDER)
        .env("CUSTOMER", CUSTOMER)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut ok = false;
    let run = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            match line.trim() {
                "READY_FOR_INBOUND" => {
                    let digits = CUSTOMER.trim_start_matches('+');
                    assert!(
                        smsc.inject_mo(
                            "hermod",
                            digits,
                            SENDER.trim_start_matches('+'),
                            "hello?",
                            false
                        ) > 0,
                        "no bound receiver for the inbound SMS"
                    );
                }
                "OK" => ok = true,
                other => eprintln!("{kind} sdk: {other}"),
            }
        }
        child.wait().await.unwrap()
    };
    let status = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .unwrap_or_else(|_| panic!("the {kind} SDK script did not finish"));
    assert!(
        status.success() && ok,
        "the {kind} SDK script failed: {status}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_official_python_sdk_works_unchanged() {
    run_sdk("python").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_official_node_sdk_works_unchanged() {
    run_sdk("node").await;
}

type Posts = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<(String, String)>)>>>;

/// A receiver on `port` that records `(X-Twilio-Signature, form)` and fails the first
/// `fail` POSTs with 500.
fn form_receiver(port: u16, got: Posts, fail: usize) -> actix_web::dev::ServerHandle {
    use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let server = HttpServer::new(move || {
        let (got, seen) = (got.clone(), seen.clone());
        App::new().route(
            "/status",
            web::post().to(move |req: HttpRequest, body: web::Bytes| {
                let (got, seen) = (got.clone(), seen.clone());
                async move {
                    if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < fail {
                        return HttpResponse::InternalServerError().finish();
                    }
                    let sig = req
                        .headers()
                        .get("x-twilio-signature")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let form = url::form_urlencoded::parse(&body)
                        .map(|(k, v)| (k.into_owned(), v.into_owned()))
                        .collect();
                    got.lock().unwrap().push((sig, form));
                    HttpResponse::NoContent().finish()
                }
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .bind(("127.0.0.1", port))
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    handle
}

/// An RCS-capable recipient gets RCS through the Twilio API, reported in Twilio's
/// words (`sent`, `delivered`, `read`); callbacks a receiver refused at first come
/// later, still signed with the auth token.
#[tokio::test(flavor = "multi_thread")]
async fn twilio_messages_take_rcs_and_their_callbacks_survive_a_receiver_down() {
    let r = crate::rcs::rig(|c| c.all_reachable = true).await;
    let (sid, token) = twilio_account(r.dir.path(), "shop");
    let port = free_port();
    let got: Posts = Default::default();
    let _receiver = form_receiver(port, got.clone(), 2);
    let callback = format!("http://127.0.0.1:{port}/status");
    let base = format!("{}/2010-04-01/Accounts/{sid}", r.server.base);
    let (s, m) = tw(
        Method::POST,
        &format!("{base}/Messages.json"),
        &sid,
        &token,
        &[
            ("To", CUSTOMER),
            ("From", crate::rcs::SHOP_NUMBER),
            ("Body", "Your table is ready"),
            ("StatusCallback", &callback),
        ],
    )
    .await;
    assert_eq!(s, 201, "{m}");
    let msid = m["sid"].as_str().unwrap().to_owned();
    eventually("read, by RCS", Duration::from_secs(60), || async {
        let (_, v) = tw(
            Method::GET,
            &format!("{base}/Messages/{msid}.json"),
            &sid,
            &token,
            &[],
        )
        .await;
        v["status"] == "read"
    })
    .await;
    // The two refused ones come again after their backoff.
    eventually("every callback", Duration::from_secs(60), || async {
        let got = got.lock().unwrap();
        ["queued", "sent", "delivered", "read"].iter().all(|want| {
            got.iter()
                .any(|(_, f)| f.contains(&("MessageStatus".into(), (*want).into())))
        })
    })
    .await;
    let posts = got.lock().unwrap().clone();
    let mut statuses = Vec::new();
    for (sig, form) in &posts {
        assert!(
            hermod_crypto::twilio::verify(&token, &callback, form, sig),
            "a callback not signed with the auth token: {form:?}"
        );
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("MessageSid"), Some(msid.as_str()));
        assert_eq!(get("AccountSid"), Some(sid.as_str()));
        assert_eq!(get("To"), Some(CUSTOMER));
        statuses.push(get("MessageStatus").unwrap().to_owned());
        if get("MessageStatus") == Some("delivered") {
            assert_eq!(get("ChannelPrefix"), Some("rcs"), "{form:?}");
        }
    }
    for want in ["queued", "sent", "delivered", "read"] {
        assert!(
            statuses.iter().any(|s| s == want),
            "no {want} callback: {statuses:?}"
        );
    }
    assert_eq!(r.smsc.submit_count(), 0, "nothing went by SMS");
}

/// The README's "Coming from Twilio" snippets are examples/twilio/send.{py,js}, and
/// they send through Hermod with the official SDKs as printed.
#[tokio::test(flavor = "multi_thread")]
async fn the_readme_twilio_examples_run_as_printed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    for f in ["examples/twilio/send.py", "examples/twilio/send.js"] {
        let code = std::fs::read_to_string(root.join(f)).unwrap();
        assert!(
            readme.contains(code.trim_end()),
            "README.md does not show {f} as it is"
        );
    }
    let (_smsc, server, _dir, _key, sid, token) = setup().await;
    for (kind, file) in [("python", "send.py"), ("node", "send.js")] {
        let Some((program, _)) = sdk_tool(kind) else {
            continue;
        };
        let out = tokio::process::Command::new(program)
            .arg(root.join("examples/twilio").join(file))
            .env("HERMOD_URL", &server.base)
            .env("TWILIO_ACCOUNT_SID", &sid)
            .env("TWILIO_AUTH_TOKEN", &token)
            .env("TWILIO_FROM", SENDER)
            .env("NODE_PATH", root.join("tests/sdk/node/node_modules"))
            .output()
            .await
            .unwrap();
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success()
                && printed.starts_with("SM")
                && printed.trim_end().ends_with(" queued"),
            "{file}: {printed}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A number's `SmsUrl` on `port`: records `(X-Twilio-Signature, form)` and answers
/// `twiml`.
fn twiml_receiver(port: u16, got: Posts, twiml: &'static str) -> actix_web::dev::ServerHandle {
    use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
    let server = HttpServer::new(move || {
        let got = got.clone();
        App::new().route(
            "/sms",
            web::post().to(move |req: HttpRequest, body: web::Bytes| {
                let got = got.clone();
                async move {
                    let sig = req
                        .headers()
                        .get("x-twilio-signature")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let form = url::form_urlencoded::parse(&body)
                        .map(|(k, v)| (k.into_owned(), v.into_owned()))
                        .collect();
                    got.lock().unwrap().push((sig, form));
                    HttpResponse::Ok().content_type("text/xml").body(twiml)
                }
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .bind(("127.0.0.1", port))
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    handle
}
