//! The SMSC simulator's HTTP admin endpoint (`hermod sim smsc --admin ADDR`):
//! `POST /mo` sends an inbound message to a bound ESME, `GET /stats` shows counters
//! (`submitted`, `repeated`, `dropped_connections`, `throttled`, `pending_deliver_sm`,
//! `binds`).

use std::net::SocketAddr;

use actix_web::{App, HttpResponse, HttpServer, web};
use hermod_sim::smsc::Smsc;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Mo {
    /// The ESME's system_id the message goes to.
    system_id: String,
    from: String,
    to: String,
    text: String,
    /// Concatenate with SAR TLVs instead of a UDH.
    #[serde(default)]
    sar: bool,
}

async fn mo(smsc: web::Data<Smsc>, body: web::Json<Mo>) -> HttpResponse {
    let parts = smsc.inject_mo(&body.system_id, &body.from, &body.to, &body.text, body.sar);
    HttpResponse::Accepted().json(serde_json::json!({ "parts": parts }))
}

async fn stats(smsc: web::Data<Smsc>) -> HttpResponse {
    // Submits that repeat an earlier one (same destination and octets): a soak with a
    // distinct text per message wants none.
    let mut seen = std::collections::HashSet::new();
    let repeated = smsc
        .submitted()
        .into_iter()
        .filter(|s| !seen.insert((s.destination.clone(), s.short_message.clone())))
        .count();
    HttpResponse::Ok().json(serde_json::json!({
        "submitted": smsc.submit_count(),
        "repeated": repeated,
        "dropped_connections": smsc.dropped_count(),
        "throttled": smsc.throttled_count(),
        "pending_deliver_sm": smsc.pending_receipts(),
        "binds": smsc.bind_count(),
    }))
}

/// Starts the admin server; returns the address it listens on.
pub fn start(smsc: Smsc, addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    let data = web::Data::new(smsc);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/mo", web::post().to(mo))
            .route("/stats", web::get().to(stats))
    })
    .workers(1)
    .disable_signals()
    .bind(addr)?;
    let local = server.addrs().first().copied().unwrap_or(addr);
    tokio::spawn(server.run());
    Ok(local)
}
