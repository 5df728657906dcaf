//! `hermod`: the binary. Settings, telemetry and the CLI; `app` wires the backends.

mod api_doc;
mod app;
mod bench;
mod bulk;
mod config_doc;
mod keyfiles;
mod registry;
mod settings;
mod sim_admin;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use hermod_channels::rcs::AgentConfig;
use hermod_sim::device::DeviceSim;
use hermod_sim::rbm::{RbmSim, RbmSimConfig};
use hermod_sim::smsc::{Smsc, SmscConfig};
use tokio_util::sync::CancellationToken;

use settings::Settings;

#[derive(Parser)]
#[command(
    name = "hermod",
    version,
    about = "RCS-aware omnichannel messaging: one API, SMS/RCS/app delivery, unified receipts"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// API and all workers in one process.
    Serve {
        #[arg(long, env = "HERMOD_CONFIG")]
        config: Option<PathBuf>,
        /// The address to listen on; overrides `listen` of the configuration.
        #[arg(long)]
        listen: Option<String>,
    },
    /// The HTTP API only (distributed mode).
    Api {
        #[arg(long, env = "HERMOD_CONFIG")]
        config: Option<PathBuf>,
        /// The address to listen on; overrides `listen` of the configuration.
        #[arg(long)]
        listen: Option<String>,
    },
    /// Pipeline stages only (distributed mode): `all`, or any of the outbox relay,
    /// dispatch, each channel's sender (named after the channel),
    /// fallback (timers), webhooks (customer deliveries) and audit (the hash chain,
    /// checkpoints, retention).
    Worker {
        #[arg(long, env = "HERMOD_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long, default_value = "all")]
        stages: String,
    },
    /// `serve` plus the built-in SMSC and RBM simulators on loopback, with an API key
    /// printed.
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        #[arg(long, default_value = "./hermod-data")]
        data: PathBuf,
    },
    /// Applies database migrations (SQLite file or PostgreSQL).
    Migrate {
        #[arg(long, env = "HERMOD_CONFIG")]
        config: Option<PathBuf>,
    },
    /// API keys.
    Keys {
        #[command(subcommand)]
        cmd: KeysCmd,
    },
    /// Sender ownership (also `/v1/admin/senders`).
    Senders {
        #[command(subcommand)]
        cmd: SendersCmd,
    },
    /// The tamper-evident audit log.
    Audit {
        #[command(subcommand)]
        cmd: AuditCmd,
    },
    /// Protocol simulators.
    Sim {
        #[command(subcommand)]
        cmd: SimCmd,
    },
    /// Shows the SMPP connectors and their binds of a running server.
    Connectors {
        #[arg(long, env = "HERMOD_CONFIG")]
        config: Option<PathBuf>,
        /// Base URL of the server; default from `listen` in the configuration.
        #[arg(long, env = "HERMOD_URL")]
        url: Option<String>,
        /// The admin token; default the configured one.
        #[arg(long, env = "HERMOD_ADMIN_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Print the JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Throughput and latency benchmark of the embedded mode with the SMSC simulator.
    Bench(bench::BenchArgs),
    /// Prints reference pages generated from the program itself.
    Docs {
        #[command(subcommand)]
        cmd: DocsCmd,
    },
    /// Sends a CSV campaign through a running server with a template: a progress
    /// bar, failed rows in a report file, and resumable (run it again after an
    /// interruption; nobody gets a message twice).
    Send(bulk::SendArgs),
    /// Prints the OpenAPI document.
    Openapi,
}

#[derive(Subcommand)]
enum SendersCmd {
    /// Gives a sender (number, alphanumeric id, RCS agent name) to a tenant.
    Assign {
        /// The tenant's name (as in `keys create --tenant`) or its `ten_…` id.
        #[arg(long)]
        tenant: String,
        sender: String,
        /// The tenant's sender for messages without `from`.
        #[arg(long)]
        default: bool,
        #[arg(long, env = "HERMOD_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Creates a key for a tenant (created if new) and prints it once.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long, env = "HERMOD_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Revokes a key at once (the full key, or its id); recorded in the audit log.
    Revoke {
        key: String,
        #[arg(long, env = "HERMOD_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Recomputes every tenant's chain (or one) and checks each checkpoint signature;
    /// prints the first broken sequence number and why, and exits 1 if any is broken.
    Verify {
        /// Only this tenant (`ten_...`).
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long, env = "HERMOD_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Prints the checkpoint public key (base64) and its id.
    PublicKey {
        #[arg(long, env = "HERMOD_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum DocsCmd {
    /// The command-line reference (docs/src/reference/cli.md), as Markdown.
    Cli,
    /// The configuration reference (docs/src/reference/configuration.md), as Markdown,
    /// from the settings' own definitions: every key, its type, default, variable and
    /// meaning.
    Config,
    /// The JSON Schema of the configuration file (for editors: Taplo's `#:schema`).
    ConfigSchema,
    /// The HTTP API reference (docs/src/reference/http-api.md), as Markdown, rendered
    /// from the OpenAPI document.
    Api,
}

/// Every command's `--help`, as one Markdown page.
fn cli_reference() -> String {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    cmd.build();
    let mut out = String::from(
        "# Command line\n\n<!-- Generated by `hermod docs cli > docs/src/reference/cli.md`; \
         the test docs::the_cli_reference_is_what_the_binary_says checks it. -->\n\n\
         Options that name an environment variable (`[env: …]`) take it when the option \
         is not given; settings of the configuration file are `HERMOD_*` variables too \
         ([configuration](configuration.md)).\n",
    );
    cli_section(&mut cmd, 2, &mut out);
    out
}

fn cli_section(cmd: &mut clap::Command, depth: usize, out: &mut String) {
    // The page shows which variable an option reads, never its value here.
    *cmd = std::mem::take(cmd).mut_args(|a| a.hide_env_values(true));
    let name = cmd.get_bin_name().unwrap_or(cmd.get_name()).to_owned();
    let help = cmd.render_long_help().to_string();
    out.push_str(&format!(
        "\n{} `{name}`\n\n```text\n{}\n```\n",
        "#".repeat(depth.min(4)),
        help.trim_end()
    ));
    for sub in cmd.get_subcommands_mut() {
        if sub.get_name() != "help" {
            cli_section(sub, depth + 1, out);
        }
    }
}

#[derive(Subcommand)]
enum SimCmd {
    /// An app device: registers an X25519 key for a number, receives sealed messages
    /// over the WebSocket stream, opens them and acknowledges delivered, then read.
    Device {
        /// The Hermod API.
        #[arg(long, env = "HERMOD_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// A tenant API key (to register the device).
        #[arg(long, env = "HERMOD_API_KEY", hide_env_values = true)]
        api_key: String,
        /// The recipient number this device belongs to.
        #[arg(long)]
        recipient: String,
        /// chacha20poly1305 or aes256gcm.
        #[arg(long, default_value = "chacha20poly1305")]
        aead: String,
        #[arg(long, default_value_t = 1000)]
        read_delay_ms: u64,
    },
    /// An RBM API v1 server (token, capabilities, agentMessages, revoke) that posts
    /// signed events to the agent's webhook.
    Rbm {
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: SocketAddr,
        #[arg(long, default_value = "demo@rbm.goog")]
        agent_id: String,
        /// The agent's webhook, e.g. http://127.0.0.1:8080/v1/webhooks/rbm/demo.
        #[arg(long)]
        webhook: Option<String>,
        /// The clientToken events are signed with.
        #[arg(long, default_value = "sim-client-token")]
        client_token: String,
        /// The service-account JSON key whose JWTs are accepted; without it, a demo
        /// key is written to ./rbm-sim-service-account.json.
        #[arg(long)]
        service_account: Option<PathBuf>,
        /// Every number is RCS-capable (otherwise register devices: POST /sim/devices).
        #[arg(long)]
        all_reachable: bool,
        #[arg(long, default_value_t = 300)]
        delivery_delay_ms: u64,
        /// Delay from DELIVERED to READ; 0 = never read.
        #[arg(long, default_value_t = 1000)]
        read_delay_ms: u64,
        /// Answer revokes as the revoke guide reads: 200 without confirming, and the
        /// message is still delivered (default: the delete reference, 200 revoked or
        /// 404 already delivered).
        #[arg(long)]
        revoke_unconfirmed: bool,
        /// Refuse messages without a messageTrafficType, as a multi-use agent does.
        #[arg(long)]
        multi_use: bool,
        /// Serve HTTPS with this PEM certificate chain (and --tls-key).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// An SMPP 3.4 SMSC that sends delivery receipts.
    Smsc {
        #[arg(long, default_value = "127.0.0.1:2775")]
        listen: SocketAddr,
        /// Accept only this system_id (with --password).
        #[arg(long)]
        system_id: Option<String>,
        #[arg(long)]
        password: Option<String>,
        #[arg(long, default_value_t = 200)]
        dlr_delay_ms: u64,
        /// Share of submits answered ESME_RTHROTTLED (0.0 to 1.0).
        #[arg(long, default_value_t = 0.0)]
        throttle: f64,
        /// Destinations with this prefix get stat:UNDELIV.
        #[arg(long)]
        undeliverable_prefix: Option<String>,
        /// Serve smpps: PEM certificate chain and key.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// standard (TLVs + text), text-only, no-user-ref (TLVs without
        /// user_message_reference, like most SMSCs), decimal-ids or loose.
        #[arg(long, default_value = "standard")]
        receipt_style: String,
        /// Close the connection on every Nth submit (not taken, not answered; responses
        /// not yet written are lost with it).
        #[arg(long, default_value_t = 0)]
        drop_every: u64,
        /// HTTP admin endpoint: `POST /mo` injects an inbound message.
        #[arg(long)]
        admin: Option<SocketAddr>,
    },
}

/// `<data>/demo.env`: what the walkthrough's shell needs of this demo, for `source`
/// (mode 0600: it holds the API key).
fn write_demo_env(
    data: &std::path::Path,
    url: &str,
    key: &str,
    admin_token: &str,
    admin: SocketAddr,
    rbm_sim: &str,
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
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// `hermod connectors` as a table.
fn connectors_table(v: &serde_json::Value) -> String {
    let mut out = format!(
        "{:<14} {:<8} {:<20} {:<11} {:<20} {:>9} {:>8}  {}\n",
        "CONNECTOR", "HEALTHY", "BIND", "STATE", "SINCE", "IN-FLIGHT", "SENT/S", "LAST ERROR"
    );
    let empty = Vec::new();
    for c in v["data"].as_array().unwrap_or(&empty) {
        // An RBM agent: one row per region, its launch state.
        for l in c["launch"].as_array().unwrap_or(&empty) {
            out.push_str(&format!(
                "{:<14} {:<8} {:<20} {:<11} {:<20} {:>9} {:>8}  {}\n",
                c["name"].as_str().unwrap_or(""),
                if l["state"] == "LAUNCHED" {
                    "yes"
                } else {
                    "no"
                },
                l["region"].as_str().unwrap_or(""),
                l["state"].as_str().unwrap_or(""),
                l["at"]
                    .as_str()
                    .unwrap_or("")
                    .replace('T', " ")
                    .chars()
                    .take(19)
                    .collect::<String>(),
                "-",
                "-",
                "-",
            ));
        }
        for b in c["binds"].as_array().unwrap_or(&empty) {
            let since = b["since"]
                .as_i64()
                .and_then(|ms| {
                    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
                })
                .and_then(|t| {
                    t.format(&time::macros::format_description!(
                        "[year]-[month]-[day] [hour]:[minute]:[second]"
                    ))
                    .ok()
                })
                .unwrap_or_default();
            out.push_str(&format!(
                "{:<14} {:<8} {:<20} {:<11} {:<20} {:>9} {:>8.1}  {}\n",
                c["name"].as_str().unwrap_or(""),
                if c["healthy"].as_bool().unwrap_or(false) {
                    "yes"
                } else {
                    "no"
                },
                b["id"].as_str().unwrap_or(""),
                b["state"].as_str().unwrap_or(""),
                since,
                b["in_flight"].as_u64().unwrap_or(0),
                b["sent_per_sec"].as_f64().unwrap_or(0.0),
                b["last_error"].as_str().unwrap_or("-"),
            ));
        }
    }
    out
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("HERMOD_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,rusmpp=off,rusmppc=warn,actix_server=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}

fn shutdown_token() -> CancellationToken {
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
        }
        tracing::info!("shutting down");
        c.cancel();
    });
    cancel
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    hermod_crypto::install_tls_provider();
    init_tracing();
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Serve { config, listen } => {
            let mut s = Settings::load(config.as_deref())?;
            if let Some(l) = listen {
                s.listen = l;
            }
            let listener = TcpListener::bind(&s.listen)?;
            tracing::info!(addr = %listener.local_addr()?, db = if s.database_url.is_some() { "configured" } else { "embedded" }, "listening");
            app::serve(s, config, listener, shutdown_token()).await?;
        }
        Cmd::Api { config, listen } => {
            let mut s = Settings::load(config.as_deref())?;
            if let Some(l) = listen {
                s.listen = l;
            }
            let listener = TcpListener::bind(&s.listen)?;
            tracing::info!(addr = %listener.local_addr()?, "API listening");
            let roles = app::Roles::api();
            app::run(s, config, roles, Some(listener), shutdown_token()).await?;
        }
        Cmd::Worker { config, stages } => {
            let s = Settings::load(config.as_deref())?;
            let roles = app::Roles::worker(&stages)?;
            tracing::info!(%stages, "worker starting");
            app::run(s, config, roles, None, shutdown_token()).await?;
        }
        Cmd::Sim {
            cmd:
                SimCmd::Rbm {
                    listen,
                    agent_id,
                    webhook,
                    client_token,
                    service_account,
                    all_reachable,
                    delivery_delay_ms,
                    read_delay_ms,
                    revoke_unconfirmed,
                    multi_use,
                    tls_cert,
                    tls_key,
                },
        } => {
            let (email, pem) = match service_account {
                Some(p) => {
                    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p)?)?;
                    (
                        v["client_email"].as_str().unwrap_or_default().to_owned(),
                        v["private_key"].as_str().unwrap_or_default().to_owned(),
                    )
                }
                None => {
                    let path = PathBuf::from("rbm-sim-service-account.json");
                    {
                        use std::io::Write as _;
                        use std::os::unix::fs::OpenOptionsExt as _;
                        // A private key: readable by its owner only.
                        std::fs::OpenOptions::new()
                            .write(true)
                            .create(true)
                            .truncate(true)
                            .mode(0o600)
                            .open(&path)?
                            .write_all(
                                demo_service_account(&format!("http://{listen}/token")).as_bytes(),
                            )?;
                    }
                    println!("demo service-account key written to {}", path.display());
                    (
                        hermod_crypto::rbm::DEMO_CLIENT_EMAIL.to_owned(),
                        hermod_crypto::rbm::DEMO_SERVICE_ACCOUNT_PEM.to_owned(),
                    )
                }
            };
            let mut cfg = RbmSimConfig::new(&agent_id, &email, &pem)?;
            cfg.webhook_url = webhook;
            cfg.client_token = client_token;
            cfg.all_reachable = all_reachable;
            cfg.delivery_delay = Duration::from_millis(delivery_delay_ms);
            cfg.read_delay = (read_delay_ms > 0).then(|| Duration::from_millis(read_delay_ms));
            cfg.revoke_unconfirmed = revoke_unconfirmed;
            cfg.multi_use = multi_use;
            if let (Some(c), Some(k)) = (tls_cert, tls_key) {
                cfg.tls = Some(std::sync::Arc::new(hermod_sim::smsc::server_tls(
                    &c, &k, None,
                )?));
            }
            let sim = RbmSim::start(cfg, listen)?;
            println!(
                "RBM simulator on {} (token endpoint {})",
                sim.base_url(),
                sim.token_uri()
            );
            shutdown_token().cancelled().await;
            sim.stop().await;
        }
        Cmd::Sim {
            cmd:
                SimCmd::Device {
                    url,
                    api_key,
                    recipient,
                    aead,
                    read_delay_ms,
                },
        } => {
            let aead = hermod_crypto::hpke::Aead::parse(&aead)
                .ok_or_else(|| anyhow::anyhow!("--aead: chacha20poly1305 or aes256gcm"))?;
            let dev = DeviceSim::register(&url, &api_key, &recipient, aead).await?;
            println!(
                "device {} registered for {recipient}; waiting for messages",
                dev.id
            );
            dev.run(Duration::from_millis(read_delay_ms), shutdown_token())
                .await;
        }
        Cmd::Demo { listen, data } => {
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
            agent.service_account_json =
                Some(hermod_core::Secret(demo_service_account(&rbm.token_uri())));
            agent.client_token = Some(hermod_core::Secret(rbm_cfg.client_token.clone()));
            agent.tenant = Some(tenant);
            s.rcs.agents = vec![agent];
            let admin = sim_admin::start(smsc.clone(), "127.0.0.1:0".parse()?)?;
            println!(
                "Hermod demo: API on http://{addr}, SMSC simulator on {} (admin http://{admin}), RBM simulator on {}",
                smsc.addr(),
                rbm.base_url()
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
            )?;
            println!("API key: {key}");
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
            let (base, dev_key, dev_cancel) =
                (format!("http://{addr}"), key.clone(), cancel.clone());
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
            app::serve(s, None, listener, cancel).await?;
            rbm.stop().await;
            smsc.stop();
        }
        Cmd::Migrate { config } => {
            let s = Settings::load(config.as_deref())?;
            let applied = app::migrate(&s).await?;
            println!("applied {} migration(s)", applied.len());
            for m in applied {
                println!("  {m}");
            }
        }
        Cmd::Keys {
            cmd: KeysCmd::Create { tenant, config },
        } => {
            let s = Settings::load(config.as_deref())?;
            let (id, key) = app::create_key(&s, &tenant).await?;
            println!("Tenant: {id}");
            println!("API key: {key}");
        }
        Cmd::Senders {
            cmd:
                SendersCmd::Assign {
                    tenant,
                    sender,
                    default,
                    config,
                },
        } => {
            let s = Settings::load(config.as_deref())?;
            let id = app::assign_sender(&s, &tenant, &sender, default).await?;
            println!("Sender {} belongs to {id}", sender.trim());
        }
        Cmd::Keys {
            cmd: KeysCmd::Revoke { key, config },
        } => {
            let s = Settings::load(config.as_deref())?;
            let id = hermod_crypto::ApiKeys::split(&key).map_or(key.as_str(), |(id, _)| id);
            let (_, store) = app::open_store(&s).await?;
            if store.revoke_api_key(id).await? {
                println!("Revoked key {id}");
            } else {
                anyhow::bail!("no live key {id}");
            }
        }
        Cmd::Audit {
            cmd: AuditCmd::Verify { tenant, config },
        } => {
            let s = Settings::load(config.as_deref())?;
            if !app::audit_verify(&s, tenant.as_deref()).await? {
                std::process::exit(1);
            }
        }
        Cmd::Audit {
            cmd: AuditCmd::PublicKey { config },
        } => {
            use hermod_core::audit::CheckpointSigning as _;
            let s = Settings::load(config.as_deref())?;
            let signer = hermod_crypto::audit::Ed25519Signer(keyfiles::signer(&s)?);
            println!("Key id: {}", signer.key_id());
            println!("Public key: {}", signer.public_key());
        }
        Cmd::Sim {
            cmd:
                SimCmd::Smsc {
                    listen,
                    system_id,
                    password,
                    dlr_delay_ms,
                    throttle,
                    undeliverable_prefix,
                    tls_cert,
                    tls_key,
                    receipt_style,
                    drop_every,
                    admin,
                },
        } => {
            let tls = match (tls_cert, tls_key) {
                (Some(c), Some(k)) => Some(std::sync::Arc::new(hermod_sim::smsc::server_tls(
                    &c, &k, None,
                )?)),
                _ => None,
            };
            let cfg = SmscConfig {
                credentials: system_id.map(|u| (u, password.unwrap_or_default())),
                dlr_delay: Duration::from_millis(dlr_delay_ms),
                throttle_share: throttle,
                undeliverable_prefix,
                tls,
                receipt_style: receipt_style.parse()?,
                drop_every,
                ..Default::default()
            };
            let smsc = Smsc::start(listen, cfg).await?;
            println!("SMSC simulator listening on {}", smsc.addr());
            let cancel = shutdown_token();
            if let Some(addr) = admin {
                let admin = sim_admin::start(smsc.clone(), addr)?;
                println!("SMSC simulator admin on http://{admin} (POST /mo)");
            }
            cancel.cancelled().await;
            smsc.stop();
        }
        Cmd::Connectors {
            config,
            url,
            token,
            json,
        } => {
            let s = Settings::load(config.as_deref())?;
            let base = url.unwrap_or_else(|| format!("http://{}", s.listen));
            let token = token
                .or_else(|| s.admin_token.as_ref().map(|t| t.0.clone()))
                .ok_or_else(|| anyhow::anyhow!("pass --token (the admin token)"))?;
            let v: serde_json::Value = reqwest::Client::new()
                .get(format!("{}/v1/connectors", base.trim_end_matches('/')))
                .bearer_auth(token)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", connectors_table(&v));
            }
        }
        Cmd::Bench(args) => bench::run(args).await?,
        Cmd::Docs { cmd: DocsCmd::Cli } => print!("{}", cli_reference()),
        Cmd::Docs {
            cmd: DocsCmd::Config,
        } => print!("{}", config_doc::reference()),
        Cmd::Docs { cmd: DocsCmd::Api } => print!("{}", api_doc::reference()),
        Cmd::Docs {
            cmd: DocsCmd::ConfigSchema,
        } => println!("{}", serde_json::to_string_pretty(&config_doc::schema())?),
        Cmd::Send(args) => bulk::run(args).await?,
        Cmd::Openapi => println!("{}", hermod_api::openapi::document()),
    }
    Ok(())
}

/// The demo tenant's sender number.
const DEMO_SENDER: &str = "+447700900123";
/// The number of the demo's simulated app device.
const DEMO_APP_USER: &str = "+447700900777";
/// The demo's switched-off RCS phone (its messages fall back to SMS).
const DEMO_OFFLINE: &str = "+447700900888";

/// A service-account key file for the simulators' public demo key.
pub(crate) fn demo_service_account(token_uri: &str) -> String {
    serde_json::json!({
        "type": "service_account",
        "project_id": "hermod-demo",
        "client_email": hermod_crypto::rbm::DEMO_CLIENT_EMAIL,
        "private_key": hermod_crypto::rbm::DEMO_SERVICE_ACCOUNT_PEM,
        "token_uri": token_uri,
    })
    .to_string()
}
