//! `hermod demo`: Hermod on its embedded default with the built-in simulators (an
//! SMSC, Google's RBM API, an app device) on loopback, a demo tenant with its key, and
//! a walkthrough printed.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

use hermod_channels::providers::{ProviderConfig, ProviderKind};
use hermod_channels::rcs::AgentConfig;
use hermod_sim::device::DeviceSim;
use hermod_sim::providers::{ProviderSim, ProviderSimConfig};
use hermod_sim::rbm::{RbmSim, RbmSimConfig};
use hermod_sim::smsc::{Smsc, SmscConfig};

use crate::settings::{self, Settings};
use crate::{app, shutdown_token, sim_admin};

/// Runs the demo until Ctrl-C.
pub async fn run(listen: String, data: PathBuf) -> anyhow::Result<()> {
    let smsc = Smsc::start(
        "127.0.0.1:0".parse()?,
        SmscConfig {
            dlr_delay: Duration::from_millis(500),
            ..Default::default()
        },
    )
    .await?;
    let mut s = Settings::load(None)?;
    s.listen = listen;
    s.data_dir = data;
    s.smpp.url = hermod_core::Secret(smsc.url("hermod", "demo"));
    // The demo's receivers (and the walkthrough's) are on this machine.
    if s.webhooks.allow_private.is_empty() {
        s.webhooks.allow_private = vec!["127.0.0.1/32".into(), "::1/128".into()];
    }
    // The operator's token (`hermod connectors`, `/v1/admin/*`, `/metrics`).
    if s.admin_token.is_none() {
        let t = hermod_crypto::vault::Vault::generate_key()?.replace(['+', '/', '='], "");
        s.admin_token = Some(hermod_core::Secret(format!("adm_{t}")));
    }
    let (tenant, key) = app::create_key(&s, "demo").await?;
    let (twilio_sid, twilio_token) = app::twilio_account(&s, &tenant).await?;
    // The SMPP server, on 2775 unless that is taken (another demo, an SMSC).
    let smpp_addr = match TcpListener::bind(DEMO_SMPP) {
        Ok(l) => l.local_addr()?,
        Err(_) => TcpListener::bind("127.0.0.1:0")?.local_addr()?,
    };
    s.smpp_server.listen = Some(smpp_addr.to_string());
    let (smpp_account, smpp_password) = app::smpp_account(
        &s,
        &tenant,
        hermod_api::smpp::accounts::AccountRequest {
            system_id: Some("demo".into()),
            // RCS reads come too: the demo's phones read what they get.
            read_receipts: Some(true),
            password: Some(
                hermod_crypto::password::generate(hermod_core::smpp::MAX_PASSWORD)
                    .map_err(|_| anyhow::anyhow!("no randomness"))?,
            ),
            ..Default::default()
        },
    )
    .await?;
    s.console.demo_key = Some(hermod_core::Secret(key.clone()));
    // The demo tenant owns the demo's sender (its replies and STOPs are its own).
    s.senders.assign.push(settings::SenderAssign {
        sender: DEMO_SENDER.into(),
        tenant: tenant.clone(),
        default: true,
    });
    let listener = TcpListener::bind(&s.listen)?;
    let addr = listener.local_addr()?;
    // The RBM simulator: every number is RCS-capable, and its events come back
    // signed to our webhook.
    let mut rbm_cfg = RbmSimConfig::new(
        "demo@rbm.goog",
        hermod_crypto::rbm::DEMO_CLIENT_EMAIL,
        hermod_crypto::rbm::DEMO_SERVICE_ACCOUNT_PEM,
    )?;
    rbm_cfg.all_reachable = true;
    rbm_cfg.webhook_url = Some(format!("http://{addr}/v1/webhooks/rbm/demo"));
    rbm_cfg.delivery_delay = Duration::from_millis(500);
    rbm_cfg.read_delay = Some(Duration::from_millis(1500));
    let rbm = RbmSim::start(rbm_cfg.clone(), "127.0.0.1:0".parse()?)?;
    // An RCS phone that is switched off: messages to it fall back to SMS.
    rbm.add_device(DEMO_OFFLINE, None, false);
    let mut agent = AgentConfig::new("demo", "demo@rbm.goog", &rbm.base_url());
    agent.service_account_json = Some(hermod_core::Secret(demo_service_account(&rbm.token_uri())));
    agent.client_token = Some(hermod_core::Secret(rbm_cfg.client_token.clone()));
    agent.tenant = Some(tenant);
    s.rcs.agents = vec![agent];
    // The HTTP providers' simulator: US numbers (+1 555 01xx, fictional) go out
    // through a Twilio account on it; everything else through the SMSC.
    let providers = ProviderSim::start(
        ProviderSimConfig {
            receipt_delay: Duration::from_millis(500),
            ..ProviderSimConfig::default()
        },
        "127.0.0.1:0".parse()?,
    )?;
    s.sms.providers.push(ProviderConfig {
        name: "demo-twilio".into(),
        kind: ProviderKind::Twilio,
        base_url: Some(providers.url()),
        account: providers.config().twilio_sid.clone(),
        token: hermod_core::Secret(providers.config().twilio_token.clone()),
        public_url: Some(format!("http://{addr}")),
        ..ProviderConfig::default()
    });
    s.smpp.providers = s.sms.providers.clone();
    // The demo's routes live in <data>/demo.toml, so a reload (SIGHUP,
    // `POST /v1/admin/reload`) re-reads them.
    let routes_file = s.data_dir.join("demo.toml");
    std::fs::create_dir_all(&s.data_dir)?;
    std::fs::write(&routes_file, DEMO_ROUTES)?;
    let file: Settings = Settings::load(Some(&routes_file))?;
    s.smpp.routes = file.smpp.routes;
    let admin = sim_admin::start(smsc.clone(), "127.0.0.1:0".parse()?)?;
    println!(
        "Hermod demo: API on http://{addr}, SMSC simulator on {} (admin http://{admin}), RBM simulator on {}, HTTP SMS providers' simulator on {}",
        smsc.addr(),
        rbm.base_url(),
        providers.url()
    );
    let admin_token = s
        .admin_token
        .as_ref()
        .map(|t| t.0.as_str())
        .unwrap_or_default();
    let env_file = write_demo_env(
        &s.data_dir,
        &format!("http://{addr}"),
        &key,
        admin_token,
        admin,
        &rbm.base_url(),
        &providers.url(),
        (&twilio_sid, &twilio_token),
        (
            smpp_addr,
            &smpp_account.system_id,
            smpp_password.as_deref().unwrap_or_default(),
        ),
    )?;
    println!("API key: {key}");
    println!("Console: http://{addr}/console");
    println!("Twilio: account_sid={twilio_sid} auth_token={twilio_token} from={DEMO_SENDER}");
    println!(
        "SMPP server: {smpp_addr} system_id={} password={}",
        smpp_account.system_id,
        smpp_password.as_deref().unwrap_or_default()
    );
    println!("Listening on http://{addr}");
    println!("In another shell: source {}", env_file.display());
    println!(
        "Try:\n  curl -s -X POST http://{addr}/v1/messages -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' -d '{{\"to\":\"+447911123456\",\"text\":\"Hello from Hermod\"}}'"
    );
    println!(
        "  curl -s -X POST http://{addr}/v1/messages -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' -d '{{\"to\":\"+447911123456\",\"channels\":[\"rcs\"],\"content\":{{\"card\":{{\"title\":\"Order 1234 shipped\",\"description\":\"Arrives Tuesday\"}}}},\"suggestions\":[{{\"reply\":{{\"text\":\"Thanks\"}}}}]}}'"
    );
    println!(
        "  curl -s -X POST http://{addr}/v1/messages -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' -d '{{\"to\":\"{DEMO_APP_USER}\",\"channels\":[\"app\"],\"text\":\"End-to-end encrypted hello\"}}'"
    );
    println!(
        "  curl -s -X POST http://{addr}/v1/messages -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' -d '{{\"to\":\"{DEMO_OFFLINE}\",\"text\":\"Your code is 391 205\",\"fallback\":{{\"after\":\"5s\"}}}}'   # RCS phone off: revoked after 5 s, then SMS"
    );
    println!("  curl -s http://{addr}/v1/messages/<id> -H 'Authorization: Bearer {key}'");
    // A simulated app device of DEMO_APP_USER, once the API answers.
    let cancel = shutdown_token();
    let (base, dev_key, dev_cancel) = (format!("http://{addr}"), key.clone(), cancel.clone());
    tokio::spawn(async move {
        for _ in 0..100 {
            match DeviceSim::register(
                &base,
                &dev_key,
                DEMO_APP_USER,
                hermod_crypto::hpke::Aead::ChaCha20Poly1305,
            )
            .await
            {
                Ok(d) => {
                    d.run(Duration::from_millis(1500), dev_cancel).await;
                    return;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        tracing::warn!("demo device could not register");
    });
    app::serve(s, Some(routes_file), listener, cancel).await?;
    rbm.stop().await;
    providers.stop().await;
    smsc.stop();
    Ok(())
}

/// The demo's routes: the fictional `+1 555` numbers through its Twilio account on
/// the providers' simulator, everything else through its SMSC.
const DEMO_ROUTES: &str = r#"# Written by `hermod demo`: its SMS routes (re-read on a reload).
[[smpp.routes]]
prefix = "1555"
connector = "demo-twilio"

[[smpp.routes]]
prefix = ""
connector = "default"
priority = 1
"#;

/// Where the demo's SMPP server listens when it can.
const DEMO_SMPP: &str = "127.0.0.1:2775";

/// `<data>/demo.env`: what the walkthrough's shell needs of this demo, for `source`
/// (mode 0600: it holds the API key).
#[allow(clippy::too_many_arguments)]
fn write_demo_env(
    data: &std::path::Path,
    url: &str,
    key: &str,
    admin_token: &str,
    admin: SocketAddr,
    rbm_sim: &str,
    providers_sim: &str,
    twilio: (&str, &str),
    smpp: (SocketAddr, &str, &str),
) -> anyhow::Result<PathBuf> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::create_dir_all(data)?;
    let path = data.join("demo.env");
    let tmp = data.join("demo.env.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    writeln!(
        f,
        "# Written by `hermod demo`; `source` it in another shell."
    )?;
    writeln!(f, "export HERMOD_URL={url}")?;
    writeln!(f, "export HERMOD_API_KEY={key}")?;
    writeln!(f, "export HERMOD_ADMIN_TOKEN={admin_token}")?;
    writeln!(f, "export HERMOD_SMSC_ADMIN=http://{admin}")?;
    writeln!(f, "export HERMOD_RBM_SIM={rbm_sim}")?;
    writeln!(f, "export HERMOD_PROVIDERS_SIM={providers_sim}")?;
    writeln!(f, "export TWILIO_ACCOUNT_SID={}", twilio.0)?;
    writeln!(f, "export TWILIO_AUTH_TOKEN={}", twilio.1)?;
    writeln!(f, "export TWILIO_FROM={DEMO_SENDER}")?;
    writeln!(f, "export SMPP_HOST={}", smpp.0.ip())?;
    writeln!(f, "export SMPP_PORT={}", smpp.0.port())?;
    writeln!(f, "export SMPP_SYSTEM_ID={}", smpp.1)?;
    writeln!(f, "export SMPP_PASSWORD={}", smpp.2)?;
    writeln!(
        f,
        "export SMPP_SOURCE={}",
        DEMO_SENDER.trim_start_matches('+')
    )?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// The demo tenant's sender number.
const DEMO_SENDER: &str = "+447700900123";
/// The number of the demo's simulated app device.
const DEMO_APP_USER: &str = "+447700900777";
/// The demo's switched-off RCS phone (its messages fall back to SMS).
const DEMO_OFFLINE: &str = "+447700900888";

/// A service-account key file for the simulators' public demo key.
pub fn demo_service_account(token_uri: &str) -> String {
    serde_json::json!({
        "type": "service_account",
        "project_id": "hermod-demo",
        "client_email": hermod_crypto::rbm::DEMO_CLIENT_EMAIL,
        "private_key": hermod_crypto::rbm::DEMO_SERVICE_ACCOUNT_PEM,
        "token_uri": token_uri,
    })
    .to_string()
}
