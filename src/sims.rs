//! `hermod sim`: the providers' simulators as commands (an SMSC, Google's RBM API, an
//! app device), for demos, benchmarks and trying Hermod without a carrier.

use std::path::PathBuf;
use std::time::Duration;

use hermod_sim::device::DeviceSim;
use hermod_sim::rbm::{RbmSim, RbmSimConfig};
use hermod_sim::smsc::{Smsc, SmscConfig};

use crate::cli::SimCmd;
use crate::demo::demo_service_account;
use crate::{shutdown_token, sim_admin};

pub async fn run(cmd: SimCmd) -> anyhow::Result<()> {
    match cmd {
        SimCmd::Providers {
            listen,
            receipt_delay_ms,
        } => {
            let cfg = hermod_sim::providers::ProviderSimConfig {
                receipt_delay: Duration::from_millis(receipt_delay_ms),
                ..Default::default()
            };
            let sim = hermod_sim::providers::ProviderSim::start(cfg.clone(), listen)?;
            println!("HTTP SMS providers' simulator on {}", sim.url());
            println!(
                "  twilio: account={} token={}",
                cfg.twilio_sid, cfg.twilio_token
            );
            println!(
                "  vonage: account={} token={} webhook_secret={} (sha256)",
                cfg.vonage_key, cfg.vonage_secret, cfg.vonage_signature_secret
            );
            println!("  infobip: token={}", cfg.infobip_key);
            println!(
                "  sinch: account={} token={}",
                cfg.sinch_plan, cfg.sinch_token
            );
            println!(
                "  http: POST /generic/messages, Authorization: Bearer {}",
                cfg.generic_token
            );
            shutdown_token().cancelled().await;
            sim.stop().await;
        }
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
        SimCmd::Device {
            url,
            api_key,
            recipient,
            aead,
            read_delay_ms,
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
    }
    Ok(())
}
