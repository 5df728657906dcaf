//! The composition root: the only place that picks concrete backends.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpServer};
use hermod_api::{AppState, Operations};
use hermod_channels::{ChannelEnv, Roles as ChannelRoles};
use hermod_core::model::{ChannelKind, ChannelSet};
use hermod_core::ports::Connectors;
use hermod_core::ports::Tenants as _;
use hermod_crypto::ApiKeys;
use hermod_queue::{EmbeddedQueue, RabbitQueue, RabbitSettings};
use hermod_store::{Db, SqlStore};
use hermod_workers::{InboundHandler, Pipeline, ReceiptBatcher, Stages, WorkerSettings};
use tokio_util::sync::CancellationToken;

use crate::housekeeping::purge_idempotency;
use crate::ops::{Ops, metrics_renderer, reload_on_sighup};
use crate::settings::Settings;

/// Prepares the data directory (embedded) and applies migrations.
pub async fn migrate(settings: &Settings) -> anyhow::Result<Vec<String>> {
    let url = settings.database_url();
    if !hermod_store::is_postgres_url(&url) {
        std::fs::create_dir_all(&settings.data_dir)?;
    }
    Ok(Db::migrate(&url).await?)
}

pub async fn open_store(settings: &Settings) -> anyhow::Result<(Db, Arc<SqlStore>)> {
    migrate(settings).await?;
    let db = Db::open_with(&settings.database_url(), 8, settings.sqlite_synchronous).await?;
    let vault = crate::keyfiles::vault(settings)?;
    Ok((db.clone(), Arc::new(SqlStore::new(db, vault))))
}

/// `hermod audit verify`: chains what is pending, then verifies each tenant's chain
/// (or one) and prints one line per tenant; false when any is broken.
pub async fn audit_verify(settings: &Settings, tenant: Option<&str>) -> anyhow::Result<bool> {
    use hermod_core::audit::{AuditLog, chain_all};
    let (_, store) = open_store(settings).await?;
    let signer = hermod_crypto::audit::Ed25519Signer(crate::keyfiles::signer(settings)?);
    chain_all(store.as_ref()).await?;
    let tenants = match tenant {
        Some(t) => vec![t.to_owned()],
        None => store.audit_tenants().await?,
    };
    let mut ok = true;
    for t in tenants {
        let r = hermod_crypto::audit::verify_tenant(store.as_ref(), &signer, &t).await?;
        match r.broken {
            None => println!(
                "OK tenant {t}: {} entries, {} checkpoints",
                r.entries, r.checkpoints
            ),
            Some(b) => {
                ok = false;
                println!("BROKEN tenant {t} seq {}: {}", b.seq, b.reason.as_str());
            }
        }
    }
    Ok(ok)
}

/// Creates an API key for a tenant; prints nothing, returns the tenant id and the
/// full key.
pub async fn create_key(settings: &Settings, tenant: &str) -> anyhow::Result<(String, String)> {
    let (_, store) = open_store(settings).await?;
    let keys = ApiKeys::new(&crate::keyfiles::pepper(settings)?);
    let k = keys.generate()?;
    let id = store.create_api_key(tenant, &k.key_id, &k.hash).await?;
    Ok((id.to_string(), k.full))
}

/// A tenant by its name (as in `keys create --tenant`) or its `ten_…` id.
async fn tenant_by_name_or_id(
    store: &hermod_store::SqlStore,
    tenant: &str,
) -> anyhow::Result<hermod_core::TenantId> {
    match hermod_core::TenantId::parse(tenant) {
        Some(id) => Ok(id),
        None => store
            .tenant_id_by_name(tenant)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no tenant named '{tenant}'")),
    }
}

/// `hermod twilio-account`: the tenant's (by name or `ten_…` id) Twilio-compatible
/// account, created or given a new auth token: `(account SID, auth token)`.
pub async fn twilio_account(settings: &Settings, tenant: &str) -> anyhow::Result<(String, String)> {
    use hermod_core::twilio::TwilioStore;
    let (_, store) = open_store(settings).await?;
    let id = tenant_by_name_or_id(&store, tenant).await?;
    let (sid, token) = hermod_api::twilio::new_credentials().map_err(|e| anyhow::anyhow!("{e}"))?;
    let a = store
        .put_account(&id, &sid, &token, hermod_core::now_ms())
        .await?
        .ok_or_else(|| anyhow::anyhow!("no tenant {id}"))?;
    Ok((a.sid, a.auth_token.0))
}

/// `hermod senders assign`: gives a sender to a tenant (by name or `ten_…` id).
pub async fn assign_sender(
    settings: &Settings,
    tenant: &str,
    sender: &str,
    default: bool,
) -> anyhow::Result<String> {
    use hermod_core::sender::{Sender, Senders};
    let (_, store) = open_store(settings).await?;
    let id = tenant_by_name_or_id(&store, tenant).await?;
    let s = Sender {
        sender: sender.trim().to_owned(),
        tenant_id: id.clone(),
        default,
        created_at: hermod_core::now_ms(),
    };
    if !store.assign_sender(&s).await? {
        anyhow::bail!("no tenant {id}");
    }
    Ok(id.to_string())
}

/// Runs the API and every worker until `cancel` fires.
pub async fn serve(
    settings: Settings,
    config: Option<PathBuf>,
    listener: TcpListener,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    run(settings, config, Roles::all(), Some(listener), cancel).await
}

/// What a process does: `serve` = everything, `api` = HTTP only, `worker` = stages.
#[derive(Clone, Copy, Debug)]
pub struct Roles {
    pub api: bool,
    /// Outbox → RabbitMQ (distributed mode only).
    pub relay: bool,
    pub stages: Stages,
}

impl Roles {
    /// Everything: `hermod serve`.
    pub fn all() -> Roles {
        Roles {
            api: true,
            relay: true,
            stages: Stages::all(),
        }
    }

    /// The HTTP API only: `hermod api`.
    pub fn api() -> Roles {
        Roles {
            api: true,
            relay: false,
            stages: Stages::NONE,
        }
    }

    /// `--stages all`, or any of `relay`, `dispatch`, each channel's name, `fallback`,
    /// `webhooks`, `audit`.
    pub fn worker(stages: &str) -> anyhow::Result<Roles> {
        let mut r = Roles {
            api: false,
            relay: false,
            stages: Stages::NONE,
        };
        for s in stages.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match s {
                "all" => {
                    r.relay = true;
                    r.stages = Stages::all();
                }
                "relay" => r.relay = true,
                other if r.stages.add(other) => {}
                other => anyhow::bail!(
                    "unknown stage {other:?} (all, relay, {})",
                    Stages::names().join(", ")
                ),
            }
        }
        Ok(r)
    }
}

/// Connects to RabbitMQ, retrying for a while: a worker may start before the broker.
async fn connect_broker(
    settings: &Settings,
    url: &str,
    cancel: &CancellationToken,
) -> anyhow::Result<Arc<RabbitQueue>> {
    let cfg = RabbitSettings {
        url: url.to_owned(),
        prefix: settings.queue_prefix.clone(),
        prefetch: settings.queue_prefetch,
        max_deliveries: settings.queue_max_deliveries,
        expires: settings.queue_expires_secs.map(Duration::from_secs),
    };
    let mut wait = Duration::from_millis(500);
    for attempt in 1.. {
        match RabbitQueue::connect(cfg.clone(), cancel.clone()).await {
            Ok(q) => return Ok(q),
            Err(e) if attempt < 10 => {
                tracing::warn!(error = %e, attempt, "RabbitMQ unreachable; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(anyhow::anyhow!("RabbitMQ unreachable: {e}")),
        }
    }
    Err(anyhow::anyhow!("RabbitMQ unreachable"))
}

/// The SMPP server's sockets (`[smpp_server]`), bound now so a taken port stops the
/// start.
async fn smpp_listeners(
    c: &crate::settings::SmppServerConfig,
) -> anyhow::Result<Vec<hermod_api::smpp::Listener>> {
    let mut out = Vec::new();
    if let Some(addr) = &c.listen {
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("smpp_server.listen {addr}: {e}"))?;
        tracing::info!(addr = %tcp.local_addr()?, "SMPP server listening");
        out.push(hermod_api::smpp::Listener { tcp, tls: None });
    }
    if let Some(addr) = &c.listen_tls {
        let (Some(cert), Some(key)) = (&c.tls_cert, &c.tls_key) else {
            anyhow::bail!("smpp_server.listen_tls needs smpp_server.tls_cert and tls_key");
        };
        let tls = hermod_crypto::tls::server_config(cert, key, None)
            .map_err(|e| anyhow::anyhow!("smpp_server TLS: {e}"))?;
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("smpp_server.listen_tls {addr}: {e}"))?;
        tracing::info!(addr = %tcp.local_addr()?, "SMPP server listening (TLS)");
        out.push(hermod_api::smpp::Listener {
            tcp,
            tls: Some(Arc::new(tls)),
        });
    }
    Ok(out)
}

/// `hermod smpp-accounts create`: a tenant's (by name or `ten_…` id) SMPP account,
/// created or changed: the account and the password set now.
pub async fn smpp_account(
    settings: &Settings,
    tenant: &str,
    req: hermod_api::smpp::accounts::AccountRequest,
) -> anyhow::Result<(hermod_core::smpp::SmppAccount, Option<String>)> {
    let (_, store) = open_store(settings).await?;
    let id = tenant_by_name_or_id(&store, tenant).await?;
    let (a, password, _) = hermod_api::smpp::accounts::put_account(store.as_ref(), &id, req)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((a, password))
}

/// `hermod smpp-accounts list` / `delete`.
pub async fn smpp_accounts(
    settings: &Settings,
    tenant: Option<&str>,
) -> anyhow::Result<Vec<hermod_core::smpp::SmppAccount>> {
    use hermod_core::smpp::SmppStore;
    let (_, store) = open_store(settings).await?;
    let id = match tenant {
        Some(t) => Some(tenant_by_name_or_id(&store, t).await?),
        None => None,
    };
    Ok(store.accounts(id.as_ref()).await?)
}

pub async fn delete_smpp_account(
    settings: &Settings,
    tenant: &str,
    system_id: &str,
) -> anyhow::Result<()> {
    use hermod_core::smpp::SmppStore;
    let (_, store) = open_store(settings).await?;
    let id = tenant_by_name_or_id(&store, tenant).await?;
    if !store.delete_account(&id, system_id).await? {
        anyhow::bail!("tenant {id} has no SMPP account '{system_id}'");
    }
    Ok(())
}

/// Runs the chosen roles until `cancel` fires.
pub async fn run(
    settings: Settings,
    config: Option<PathBuf>,
    roles: Roles,
    listener: Option<TcpListener>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    // Checked before anything starts: a bad range in allow_private stops here.
    let address_policy = Arc::new(settings.webhooks.address_policy()?);
    // The recorder first: what the binds record as they come up is not lost.
    let metrics = metrics_renderer();
    let pepper = crate::keyfiles::pepper(&settings)?;
    // Private keys named by the configuration are the operator's alone too.
    for k in crate::channels::key_files(&settings) {
        crate::keyfiles::private(&k)?;
    }
    let (db, store) = open_store(&settings).await?;
    let distributed = settings.queue.is_some();
    if distributed && !db.is_postgres() {
        anyhow::bail!("queue = \"amqp://...\" needs database_url = \"postgres://...\"");
    }
    if !distributed
        && (!roles.api || !roles.stages.dispatch || roles.stages.channels != ChannelSet::all())
    {
        anyhow::bail!(
            "`hermod api` and `hermod worker` need the distributed mode: database_url = \"postgres://...\" and queue = \"amqp://...\""
        );
    }
    let sql_queue = Arc::new(
        EmbeddedQueue::new(store.clone(), Duration::from_secs(60))
            .with_max_deliveries(settings.queue_max_deliveries),
    );
    if !db.is_postgres() {
        // One embedded process owns the file: jobs leased by a crashed run are free now.
        let n = sql_queue.release_all_leases().await?;
        if n > 0 {
            tracing::info!(jobs = n, "released jobs leased before a restart");
        }
        let (rows, timers) = store.release_leases_after_restart().await?;
        if rows + timers > 0 {
            tracing::info!(
                webhook_deliveries = rows,
                fallback_timers = timers,
                "released webhook deliveries and fallback timers leased before a restart"
            );
        }
    }
    let queue: Arc<dyn hermod_core::ports::Queue> = match &settings.queue {
        Some(url) => connect_broker(&settings, url, &cancel).await?,
        None => sql_queue.clone(),
    };
    let mut tasks = Vec::new();
    if distributed && roles.relay {
        // The outbox never gives up on a row: the broker may be down for a while.
        let outbox = Arc::new(
            EmbeddedQueue::new(store.clone(), Duration::from_secs(30))
                .with_max_deliveries(i32::MAX),
        );
        tasks.push(tokio::spawn(hermod_workers::relay::run(
            outbox,
            queue.clone(),
            500,
            cancel.clone(),
        )));
    }
    let sender_book = Arc::new(hermod_core::sender::SenderBook::new(
        Some(store.clone() as Arc<dyn hermod_core::sender::Senders>),
        crate::channels::all_fixed_senders(&settings)?,
        settings.senders.allow_unowned,
    ));
    // The channels, from the registry. Receipts from every channel (SMSC receipts,
    // RBM events, app acknowledgements) are batched into the store alike.
    let receipts = ReceiptBatcher::start(store.clone(), 512, cancel.clone());
    let inbound = InboundHandler::new(
        store.clone(),
        store.clone(),
        settings.smpp.help_reply.clone(),
        sender_book.clone(),
    );
    let (app_wake, _) = tokio::sync::broadcast::channel::<String>(1024);
    let st = roles.stages;
    let env = ChannelEnv {
        roles: ChannelRoles::default(),
        messages: store.clone(),
        inbound: store.clone(),
        devices: store.clone(),
        leases: store.clone(),
        distributed: db.is_postgres(),
        holder: format!("{}-{}", std::process::id(), uuid::Uuid::now_v7().simple()),
        lease_ttl: Duration::from_secs(settings.workers.bind_lease_secs.max(3)),
        receipts: receipts.clone(),
        inbound_sink: inbound.clone(),
        policy: address_policy.clone(),
        wake: app_wake.clone(),
        help_reply: settings.smpp.help_reply.clone(),
        cancel: cancel.clone(),
    };
    let channel_env = |kind: ChannelKind| ChannelEnv {
        roles: ChannelRoles {
            send: st.channels.contains(kind),
            // Dispatch (planning) and fallback (withdrawing) need every channel.
            plan: st.dispatch || st.fallback,
            api: roles.api,
        },
        ..env.clone()
    };
    let parts = crate::channels::build(&settings, channel_env)?;
    if let Some(t) = parts.iter().filter_map(|p| p.inbound_part_timeout).min() {
        inbound.spawn_flusher(t, cancel.clone());
    }
    let views: Vec<(ChannelKind, Arc<dyn Connectors>)> = parts
        .iter()
        .rev()
        .filter_map(|p| p.connectors.clone().map(|c| (p.kind, c)))
        .collect();
    let ops = (!views.is_empty()).then(|| {
        Arc::new(Ops {
            config: config.clone(),
            views,
        })
    });
    if let Some(o) = &ops
        && !st.channels.is_empty()
    {
        reload_on_sighup(o.clone(), cancel.clone());
    }
    if roles.api {
        tasks.push(tokio::spawn(purge_idempotency(
            store.clone(),
            Duration::from_secs(u64::from(settings.idempotency_retention_days) * 86_400),
            cancel.clone(),
        )));
    }
    let signer: Arc<dyn hermod_core::audit::CheckpointSigning> = Arc::new(
        hermod_crypto::audit::Ed25519Signer(crate::keyfiles::signer(&settings)?),
    );
    if roles.stages.audit {
        tasks.push(tokio::spawn(hermod_workers::audit::run(
            store.clone(),
            signer.clone(),
            Duration::from_secs(settings.audit.checkpoint_interval_secs.max(1)),
            Duration::from_secs(settings.audit.retention_sweep_secs.max(1)),
            cancel.clone(),
        )));
    }
    let pipeline = Pipeline {
        dispatch: store.clone(),
        queue: queue.clone(),
        channels: parts.iter().filter_map(|p| p.channel.clone()).collect(),
        webhooks: if roles.stages.webhooks {
            let poster = hermod_channels::hooks::HttpPoster::new(
                Duration::from_secs(settings.webhooks.timeout_secs.max(1)),
                address_policy.clone(),
            )?
            .with_replies(Arc::new(hermod_workers::twiml::TwimlReplier::new(
                store.clone() as Arc<dyn hermod_core::ports::Messages>,
            )));
            Some((
                store.clone() as Arc<dyn hermod_core::webhook::Webhooks>,
                Arc::new(poster) as Arc<dyn hermod_core::webhook::WebhookPoster>,
            ))
        } else {
            None
        },
        settings: WorkerSettings {
            batch: settings.workers.batch,
            senders: settings.workers.senders,
            in_doubt_grace: settings.in_doubt_grace(),
            in_doubt_min_grace: settings.in_doubt_min_grace(),
            ..WorkerSettings::default()
        },
    };
    tasks.extend(pipeline.spawn_stages(roles.stages, cancel.clone()));
    match listener.filter(|_| roles.api) {
        Some(listener) => {
            let state = AppState {
                channels: parts.iter().filter(|p| p.offered).map(|p| p.kind).collect(),
                ingress: Arc::new(
                    parts
                        .iter()
                        .flat_map(|p| p.ingress.clone())
                        .map(|(provider, i)| (provider.to_owned(), i))
                        .collect(),
                ),
                agent_events: Arc::new(
                    parts
                        .iter()
                        .filter_map(|p| p.agent_events.clone().map(|e| (p.kind, e)))
                        .collect(),
                ),
                devices: Some(store.clone() as Arc<dyn hermod_core::ports::Devices>),
                app_wake: Some(app_wake),
                receipts,
                webhooks: Some(store.clone() as Arc<dyn hermod_core::webhook::Webhooks>),
                audit: Some(store.clone() as Arc<dyn hermod_core::audit::AuditLog>),
                signer: Some(signer),
                templates: Some(store.clone() as Arc<dyn hermod_core::ports::Templates>),
                hooks: Some(store.clone() as Arc<dyn hermod_core::ports::Hooks>),
                quiet: Arc::default(),
                key_cache: Arc::default(),
                address_policy,
                senders: sender_book,
                twilio: store.clone() as Arc<dyn hermod_core::twilio::TwilioStore>,
                twilio_accounts: Default::default(),
                smpp: store.clone() as Arc<dyn hermod_core::smpp::SmppStore>,
                messages: store.clone(),
                inbound: store.clone(),
                admin: store.clone(),
                insights: store.clone(),
                quotas: Arc::default(),
                console: settings.console.options(),
                tenants: store,
                keys: ApiKeys::new(&pepper),
                metrics,
                limits: Arc::new(settings.rate_limits()),
                budgets: Arc::new(settings.budgets()),
                ops: ops.map(|o| o as Arc<dyn Operations>),
                admin_token: settings.admin_token.as_ref().map(|t| t.0.clone()),
                queue: Some(queue),
            };
            let smpp = smpp_listeners(&settings.smpp_server).await?;
            if !smpp.is_empty() {
                tasks.push(tokio::spawn(hermod_api::smpp::serve(
                    state.clone(),
                    state.smpp.clone(),
                    smpp,
                    cancel.clone(),
                )));
            }
            let server = HttpServer::new(move || {
                App::new()
                    .wrap(actix_web::middleware::from_fn(hermod_api::request_span))
                    .configure(hermod_api::configure(state.clone()))
            })
            .listen(listener)?
            .shutdown_timeout(5)
            .disable_signals()
            .run();
            let handle = server.handle();
            let c = cancel.clone();
            tokio::spawn(async move {
                c.cancelled().await;
                handle.stop(true).await;
            });
            server.await?;
            cancel.cancel();
        }
        None => cancel.cancelled().await,
    }
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    Ok(())
}
