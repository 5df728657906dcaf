//! `hermod`: the binary. Settings, telemetry and the CLI; `app` wires the backends.

mod api_doc;
mod app;
mod bench;
mod bulk;
mod channels;
mod cli;
mod config_doc;
mod demo;
mod housekeeping;
mod keyfiles;
mod ops;
mod registry;
mod settings;
mod sim_admin;
mod sims;

use std::net::TcpListener;

use clap::Parser;
use cli::*;
use tokio_util::sync::CancellationToken;

use settings::Settings;

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
        // An HTTP provider: one row, its kind where a bind would be.
        if c["base_url"].is_string() {
            out.push_str(&format!(
                "{:<14} {:<8} {:<20} {:<11} {:<20} {:>9} {:>8}  {}\n",
                c["name"].as_str().unwrap_or(""),
                if c["healthy"].as_bool().unwrap_or(false) {
                    "yes"
                } else {
                    "no"
                },
                format!("{} (http)", c["kind"].as_str().unwrap_or("")),
                "ready",
                "-",
                c["in_flight"].as_u64().unwrap_or(0),
                "-",
                c["last_error"].as_str().unwrap_or("-"),
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
        Cmd::Sim { cmd } => sims::run(cmd).await?,
        Cmd::Demo { listen, data } => demo::run(listen, data).await?,
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
        Cmd::Keys {
            cmd: KeysCmd::Twilio { tenant, config },
        } => {
            let s = Settings::load(config.as_deref())?;
            let (sid, token) = app::twilio_account(&s, &tenant).await?;
            println!("Account SID: {sid}");
            println!("Auth token: {token}");
        }
        Cmd::SmppAccounts {
            cmd:
                SmppAccountsCmd::Create {
                    tenant,
                    system_id,
                    password,
                    networks,
                    max_binds,
                    window,
                    throughput,
                    read_receipts,
                    config,
                },
        } => {
            let s = Settings::load(config.as_deref())?;
            let req = hermod_api::smpp::accounts::AccountRequest {
                system_id,
                password,
                networks: (!networks.is_empty()).then_some(networks),
                max_binds,
                window,
                throughput,
                read_receipts: read_receipts.then_some(true),
            };
            let (a, password) = app::smpp_account(&s, &tenant, req).await?;
            println!("Tenant: {}", a.tenant_id);
            println!("System ID: {}", a.system_id);
            if let Some(p) = password {
                println!("Password: {p}");
            }
        }
        Cmd::SmppAccounts {
            cmd: SmppAccountsCmd::List { tenant, config },
        } => {
            let s = Settings::load(config.as_deref())?;
            for a in app::smpp_accounts(&s, tenant.as_deref()).await? {
                println!(
                    "{}\t{}\tmax_binds={} window={} throughput={} read_receipts={} networks={}",
                    a.system_id,
                    a.tenant_id,
                    a.max_binds,
                    a.window,
                    a.throughput,
                    a.read_receipts,
                    if a.networks.is_empty() {
                        "any".to_owned()
                    } else {
                        a.networks.join(",")
                    }
                );
            }
        }
        Cmd::SmppAccounts {
            cmd:
                SmppAccountsCmd::Delete {
                    tenant,
                    system_id,
                    config,
                },
        } => {
            let s = Settings::load(config.as_deref())?;
            app::delete_smpp_account(&s, &tenant, &system_id).await?;
            println!("Deleted {system_id}");
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
        } => print!("{}", settings::reference()),
        Cmd::Docs { cmd: DocsCmd::Api } => print!("{}", api_doc::reference()),
        Cmd::Docs {
            cmd: DocsCmd::ConfigSchema,
        } => println!("{}", serde_json::to_string_pretty(&settings::schema())?),
        Cmd::Send(args) => bulk::run(args).await?,
        Cmd::Openapi => println!("{}", hermod_api::openapi::document()),
    }
    Ok(())
}
