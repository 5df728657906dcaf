//! `hermod`: the binary. Settings, telemetry and the CLI; `app` wires the backends.

mod app;
mod bench;
mod settings;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use hermod_channels::sim::smsc::{Smsc, SmscConfig};
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
    },
    /// `serve` plus the built-in SMSC simulator on loopback, with an API key printed.
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
    /// Protocol simulators.
    Sim {
        #[command(subcommand)]
        cmd: SimCmd,
    },
    /// Throughput and latency benchmark of the embedded mode with the SMSC simulator.
    Bench(bench::BenchArgs),
    /// Prints the OpenAPI document.
    Openapi,
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
}

#[derive(Subcommand)]
enum SimCmd {
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
    },
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
        Cmd::Serve { config } => {
            let s = Settings::load(config.as_deref())?;
            let listener = TcpListener::bind(&s.listen)?;
            tracing::info!(addr = %listener.local_addr()?, db = if s.database_url.is_some() { "configured" } else { "embedded" }, "listening");
            app::serve(s, listener, shutdown_token()).await?;
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
            s.smpp.url = smsc.url("hermod", "demo");
            let key = app::create_key(&s, "demo").await?;
            let listener = TcpListener::bind(&s.listen)?;
            let addr = listener.local_addr()?;
            println!(
                "Hermod demo: API on http://{addr}, SMSC simulator on {}",
                smsc.addr()
            );
            println!("API key: {key}");
            println!("Listening on http://{addr}");
            println!(
                "Try:\n  curl -s -X POST http://{addr}/v1/messages -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' -d '{{\"to\":\"+447911123456\",\"text\":\"Hello from Hermod\"}}'"
            );
            println!("  curl -s http://{addr}/v1/messages/<id> -H 'Authorization: Bearer {key}'");
            app::serve(s, listener, shutdown_token()).await?;
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
            let key = app::create_key(&s, &tenant).await?;
            println!("API key: {key}");
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
                },
        } => {
            let cfg = SmscConfig {
                credentials: system_id.map(|u| (u, password.unwrap_or_default())),
                dlr_delay: Duration::from_millis(dlr_delay_ms),
                throttle_share: throttle,
                undeliverable_prefix,
                ..Default::default()
            };
            let smsc = Smsc::start(listen, cfg).await?;
            println!("SMSC simulator listening on {}", smsc.addr());
            shutdown_token().cancelled().await;
            smsc.stop();
        }
        Cmd::Bench(args) => bench::run(args).await?,
        Cmd::Openapi => println!("{}", hermod_api::openapi::document()),
    }
    Ok(())
}
