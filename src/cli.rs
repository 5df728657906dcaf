//! The command line: `hermod serve`, `api`, `worker`, `demo`, `sim`, ... and the
//! reference page `hermod docs cli` prints.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "hermod",
    version,
    about = "RCS-aware omnichannel messaging: one API, SMS/RCS/app delivery, unified receipts"
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
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
    /// SMPP server accounts (also `/v1/admin/tenants/{id}/smpp-accounts`).
    SmppAccounts {
        #[command(subcommand)]
        cmd: SmppAccountsCmd,
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
    Bench(crate::bench::BenchArgs),
    /// Prints reference pages generated from the program itself.
    Docs {
        #[command(subcommand)]
        cmd: DocsCmd,
    },
    /// Sends a CSV campaign through a running server with a template: a progress
    /// bar, failed rows in a report file, and resumable (run it again after an
    /// interruption; nobody gets a message twice).
    Send(crate::bulk::SendArgs),
    /// Prints the OpenAPI document.
    Openapi,
}

#[derive(Subcommand)]
pub enum SendersCmd {
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
pub enum SmppAccountsCmd {
    /// Creates an SMPP account for a tenant, or changes one (by --system-id); prints
    /// the system_id and, when set now, the password (once).
    Create {
        /// The tenant's name (as in `keys create --tenant`) or its `ten_…` id.
        #[arg(long)]
        tenant: String,
        /// 1–15 letters, digits, `_` or `-` (made up when left out).
        #[arg(long)]
        system_id: Option<String>,
        /// 1–8 characters (random when left out for a new account).
        #[arg(long)]
        password: Option<String>,
        /// A network (CIDR) the account may bind from; repeat for more.
        #[arg(long = "network")]
        networks: Vec<String>,
        /// Binds open at once, per process (default 4).
        #[arg(long)]
        max_binds: Option<u32>,
        /// Submits in flight per bind before ESME_RMSGQFUL (default 50).
        #[arg(long)]
        window: Option<u32>,
        /// Submits per second before ESME_RTHROTTLED (0: the tenant's rate limit only).
        #[arg(long)]
        throughput: Option<u32>,
        /// Also report RCS and app reads (a second receipt, stat:ACCEPTD).
        #[arg(long)]
        read_receipts: bool,
        #[arg(long, env = "HERMOD_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Lists accounts (of one tenant, or all); never their passwords.
    List {
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long, env = "HERMOD_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Deletes an account and the receipts waiting for it.
    Delete {
        #[arg(long)]
        tenant: String,
        system_id: String,
        #[arg(long, env = "HERMOD_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum KeysCmd {
    /// Creates a key for a tenant (created if new) and prints it once.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long, env = "HERMOD_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Creates the tenant's Twilio-compatible account (account SID and auth token for
    /// `/2010-04-01/Accounts/...`), or gives it a new auth token (the old one stops
    /// working); prints both once.
    Twilio {
        /// The tenant's name (as in `keys create --tenant`) or its `ten_…` id.
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
pub enum AuditCmd {
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
pub enum DocsCmd {
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
pub fn cli_reference() -> String {
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
pub enum SimCmd {
    /// The HTTP SMS providers' APIs (Twilio, Vonage, Infobip, Sinch, a generic JSON
    /// one) with their default test credentials, sending receipts to the callback each
    /// request names. `POST /sim/inbound` plays a phone; `POST /sim/mode` makes a
    /// provider answer 503 or 429.
    Providers {
        #[arg(long, default_value = "127.0.0.1:8092")]
        listen: SocketAddr,
        #[arg(long, default_value_t = 200)]
        receipt_delay_ms: u64,
    },
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
