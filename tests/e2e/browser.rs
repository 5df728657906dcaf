//! The console in a real browser: headless Chromium driven over WebDriver
//! (`chromedriver`, Debian's `chromium-driver`) against `hermod demo`. Signs in with
//! one click, sends a message from the page and watches it reach delivered, opens its
//! timeline, retries a failed webhook, previews a template, creates a `read` key and
//! sees that it cannot send, signs out; the operator's pages too. A screenshot of each
//! page goes to `target/console-screenshots/` (or `$HERMOD_SCREENSHOTS`).
//!
//! Without chromedriver the test is skipped loudly, except under `CI=true` where it
//! fails (`scripts/test` installs it).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::Method;
use serde_json::json;

use crate::support::{call, eventually, free_port};

/// Kills a child process when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromedriver() -> Option<PathBuf> {
    let found = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "chromedriver is required in CI (apt-get install chromium chromium-driver)"
        );
        eprintln!(
            "!!! SKIPPED browser::console_in_a_real_browser: no chromedriver (apt-get install chromium chromium-driver) !!!"
        );
    }
    found
}

struct Shots {
    dir: PathBuf,
    n: usize,
}

impl Shots {
    async fn take(&mut self, c: &Client, name: &str) {
        self.n += 1;
        let png = c.screenshot().await.unwrap();
        std::fs::write(self.dir.join(format!("{:02}-{name}.png", self.n)), png).unwrap();
    }
}

/// The text of the element `css`, once it is there.
async fn text(c: &Client, css: &str) -> String {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

async fn path(c: &Client) -> String {
    let u = c.current_url().await.unwrap();
    u.path().to_owned()
}

/// The path once the browser is on a page `ok` accepts (a click's navigation may
/// still be under way when the click returns); says the page's flash if it never is.
async fn wait_path(c: &Client, label: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let p = path(c).await;
        if ok(&p) {
            return p;
        }
        if Instant::now() > deadline {
            let flash = match c.find(Locator::Css(".flash")).await {
                Ok(f) => f.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            panic!("{label}: still on {p} {flash}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn console_in_a_real_browser() {
    let Some(driver) = chromedriver() else {
        return;
    };
    // The demo: the one-click sign-in, the simulators, an admin token in demo.env.
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut demo = Command::new(env!("CARGO_BIN_EXE_hermod"))
        .args(["demo", "--listen", &addr, "--data"])
        .arg(dir.path())
        .env("HERMOD_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    let mut key = None;
    loop {
        let line = lines.next().expect("demo output").unwrap();
        if let Some(k) = line.strip_prefix("API key: ") {
            key = Some(k.trim().to_owned());
        }
        if line.starts_with("Listening on") {
            break;
        }
    }
    let _demo = Reaped(demo);
    let key = key.unwrap();
    let base = format!("http://{addr}");
    let env = std::fs::read_to_string(dir.path().join("demo.env")).unwrap();
    let admin_token = env
        .lines()
        .find_map(|l| l.strip_prefix("export HERMOD_ADMIN_TOKEN="))
        .unwrap()
        .to_owned();

    let port = free_port();
    let _driver = Reaped(
        Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let wd = format!("http://127.0.0.1:{port}");
    eventually(
        "chromedriver to answer",
        Duration::from_secs(20),
        || async { reqwest::get(format!("{wd}/status")).await.is_ok() },
    )
    .await;
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                        "--window-size=1280,900"]}),
    );
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&wd)
        .await
        .expect("a Chromium session");
    let shots_dir = std::env::var_os("HERMOD_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots")
        });
    std::fs::create_dir_all(&shots_dir).unwrap();
    let mut shots = Shots {
        dir: shots_dir,
        n: 0,
    };

    // Sign in with one click.
    c.goto(&format!("{base}/console")).await.unwrap();
    wait_path(&c, "/console/login", |p| p == "/console/login").await;
    shots.take(&c, "login").await;
    c.find(Locator::Id("demo-login"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_path(&c, "/console/messages", |p| p == "/console/messages").await;

    // Send a message from the page and watch it reach delivered.
    c.find(Locator::Id("send-to"))
        .await
        .unwrap()
        .send_keys("+447911123456")
        .await
        .unwrap();
    c.find(Locator::Id("send-text"))
        .await
        .unwrap()
        .send_keys("Hello from the console")
        .await
        .unwrap();
    c.find(Locator::Id("send-channels"))
        .await
        .unwrap()
        .select_by_value("sms")
        .await
        .unwrap();
    c.find(Locator::Id("send-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let message_path = wait_path(&c, "the sent message's page", |p| {
        p.starts_with("/console/messages/msg_")
    })
    .await;
    assert!(
        message_path.starts_with("/console/messages/msg_"),
        "{message_path}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if text(&c, "#status").await == "delivered" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the message never reached delivered"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        c.goto(&format!("{base}{message_path}")).await.unwrap();
    }
    // Its timeline: accepted … delivered, with the SMSC's raw receipt.
    let timeline = text(&c, "#timeline").await;
    assert!(
        timeline.contains("delivered") && timeline.contains("accepted"),
        "{timeline}"
    );
    assert!(text(&c, "#attempts").await.contains("sms"));
    shots.take(&c, "message").await;

    // The overview, with its chart.
    c.goto(&format!("{base}/console/overview")).await.unwrap();
    c.find(Locator::Id("hours-chart")).await.unwrap();
    assert!(text(&c, "#total").await.parse::<i64>().unwrap() >= 1);
    shots.take(&c, "overview").await;
    c.goto(&format!("{base}/console/messages")).await.unwrap();
    shots.take(&c, "messages").await;

    // A webhook endpoint nobody listens on: its delivery fails, and is retried from
    // the page.
    let closed = free_port();
    let (s, v, _) = call(
        Method::POST,
        &format!("{base}/v1/webhook-endpoints"),
        &key,
        Some(json!({"url": format!("http://127.0.0.1:{closed}/hook"), "events": ["*"]})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, _, _) = call(
        Method::POST,
        &format!("{base}/v1/messages"),
        &key,
        Some(json!({"to": "+447911123456", "text": "for the webhook", "channels": ["sms"]})),
    )
    .await;
    assert_eq!(s, 202);
    eventually(
        "a failed webhook delivery",
        Duration::from_secs(30),
        || async {
            let (_, v, _) = call(
                Method::GET,
                &format!("{base}/v1/webhook-deliveries"),
                &key,
                None,
            )
            .await;
            v["data"]
                .as_array()
                .is_some_and(|d| d.iter().any(|d| d["last_error"].is_string()))
        },
    )
    .await;
    c.goto(&format!("{base}/console/webhooks")).await.unwrap();
    shots.take(&c, "webhooks").await;
    c.find(Locator::Css("button.retry"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(text(&c, ".flash.info").await.contains("queued again"));

    // A template's live preview (the page's script calls the API's preview).
    let (s, v, _) = call(
        Method::POST,
        &format!("{base}/v1/templates"),
        &key,
        Some(json!({"id": "shipped", "variants": {"en": {"text": "Order {{ order.id }} ships today"}}})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    c.goto(&format!("{base}/console/templates")).await.unwrap();
    let vars = c.find(Locator::Css("form.preview textarea")).await.unwrap();
    vars.clear().await.unwrap();
    vars.send_keys(r#"{"order": {"id": "A-17"}}"#)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = text(&c, ".preview-out").await;
        if out.contains("Order A-17 ships today") && out.contains("segments: 1") {
            break;
        }
        assert!(Instant::now() < deadline, "no live preview: {out}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    shots.take(&c, "templates").await;

    for page in ["channels", "hooks", "opt-outs", "audit"] {
        c.goto(&format!("{base}/console/{page}")).await.unwrap();
        let want = format!("/console/{page}");
        wait_path(&c, &want, |p| p == want).await;
        shots.take(&c, page).await;
    }

    // A key with the read role, created on the keys page.
    c.goto(&format!("{base}/console/keys")).await.unwrap();
    c.find(Locator::Id("key-name"))
        .await
        .unwrap()
        .send_keys("dashboard")
        .await
        .unwrap();
    c.find(Locator::Id("key-role"))
        .await
        .unwrap()
        .select_by_value("read")
        .await
        .unwrap();
    c.find(Locator::Id("create-key"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let read_key = text(&c, "#new-secret").await;
    assert!(read_key.starts_with("hmk_"), "{read_key}");
    shots.take(&c, "new-key").await;
    c.goto(&format!("{base}/console/keys")).await.unwrap();
    assert!(text(&c, "#keys").await.contains("dashboard"));
    shots.take(&c, "keys").await;

    // Sign out; sign in with the read key: it cannot send.
    c.find(Locator::Id("logout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_path(&c, "/console/login", |p| p == "/console/login").await;
    c.goto(&format!("{base}/console/messages")).await.unwrap();
    wait_path(&c, "/console/login", |p| p == "/console/login").await;
    c.find(Locator::Id("key"))
        .await
        .unwrap()
        .send_keys(&read_key)
        .await
        .unwrap();
    c.find(Locator::Id("tenant-login"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_path(&c, "/console/messages", |p| p == "/console/messages").await;
    assert!(text(&c, "#cannot-send").await.contains("read"));
    assert!(
        c.find(Locator::Id("send")).await.is_err(),
        "no send form for a read key"
    );
    assert!(text(&c, "#who").await.contains("read key"));
    shots.take(&c, "read-only").await;
    c.find(Locator::Id("logout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_path(&c, "/console/login", |p| p == "/console/login").await;

    // The operator.
    c.find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(&admin_token)
        .await
        .unwrap();
    c.find(Locator::Id("operator-login"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_path(&c, "/console/overview", |p| p == "/console/overview").await;
    shots.take(&c, "operator-overview").await;
    c.goto(&format!("{base}/console/tenants")).await.unwrap();
    assert!(text(&c, "#tenants").await.contains("demo"));
    shots.take(&c, "operator-tenants").await;
    c.goto(&format!("{base}/console/channels")).await.unwrap();
    let connectors = text(&c, "#connectors").await;
    assert!(
        connectors.contains("bound") && connectors.contains("rbm:demo"),
        "{connectors}"
    );
    shots.take(&c, "operator-channels").await;
    c.goto(&format!("{base}/console/operations")).await.unwrap();
    shots.take(&c, "operator-operations").await;
    c.find(Locator::Id("logout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_path(&c, "/console/login", |p| p == "/console/login").await;
    c.close().await.unwrap();
    assert!(shots.n >= 15, "{} screenshots", shots.n);
}
