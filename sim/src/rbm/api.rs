//! The RBM API's endpoints as Google documents them: OAuth token, capabilities,
//! users:batchGet, agentMessages (create, revoke), files, agentEvents.

#[allow(unused_imports)]
use super::*;

/// `POST /token`: the JWT bearer grant (RFC 7523) as Google's endpoint takes it.
pub(super) async fn token(inner: web::Data<Inner>, body: web::Bytes) -> HttpResponse {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let bad = |e: &str, d: &str| {
        HttpResponse::BadRequest().json(json!({"error": e, "error_description": d}))
    };
    lock(&inner).token_requests += 1;
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return bad("unsupported_grant_type", "Invalid grant_type");
    }
    let Some(jwt) = form.get("assertion") else {
        return bad("invalid_request", "Missing required parameter: assertion");
    };
    let Some(claims) = hermod_crypto::rbm::verify_jwt(&inner.cfg.public_key_der, jwt) else {
        return bad("invalid_grant", "Invalid JWT Signature.");
    };
    let Ok(c) = serde_json::from_str::<Value>(&claims) else {
        return bad("invalid_grant", "Invalid JWT claims.");
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let (iat, exp) = (
        c["iat"].as_i64().unwrap_or(0),
        c["exp"].as_i64().unwrap_or(0),
    );
    if c["iss"] != inner.cfg.client_email.as_str() {
        return bad("invalid_grant", "Invalid issuer.");
    }
    if !c["aud"].as_str().is_some_and(|a| a.ends_with("/token")) {
        return bad("invalid_grant", "Invalid audience.");
    }
    if !c["scope"]
        .as_str()
        .is_some_and(|s| s.split(' ').any(|x| x == SCOPE))
    {
        return bad("invalid_scope", "Invalid OAuth scope.");
    }
    if iat > now + 60 || exp <= now || exp - iat > 3600 {
        return bad(
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.",
        );
    }
    let t = format!("ya29.sim-{}", random_id());
    let ttl = inner.cfg.token_ttl;
    lock(&inner).tokens.insert(t.clone(), Instant::now() + ttl);
    HttpResponse::Ok().json(json!({
        "access_token": t,
        "expires_in": ttl.as_secs().max(1),
        "token_type": "Bearer",
    }))
}

/// The 401 to answer unless the request has a live access token.
pub(super) fn unauthorized(inner: &Inner, req: &HttpRequest) -> Option<HttpResponse> {
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let ok = token.is_some_and(|t| {
        lock(inner)
            .tokens
            .get(t)
            .is_some_and(|until| Instant::now() < *until)
    });
    (!ok).then(|| {
        google_error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token.",
        )
    })
}

pub(super) fn query(req: &HttpRequest) -> HashMap<String, String> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect()
}

/// The error to answer unless `agentId` names this agent.
pub(super) fn wrong_agent(inner: &Inner, q: &HashMap<String, String>) -> Option<HttpResponse> {
    match q.get("agentId") {
        Some(a) if *a == inner.cfg.agent_id => None,
        Some(_) => Some(google_error(
            403,
            "PERMISSION_DENIED",
            "The caller does not have permission for this agent.",
        )),
        None => Some(google_error(
            400,
            "INVALID_ARGUMENT",
            "agentId is required.",
        )),
    }
}

pub(super) fn valid_phone(p: &str) -> bool {
    p.strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

pub(super) fn features_of(inner: &Inner, st: &State, phone: &str) -> Option<Vec<String>> {
    match st.devices.get(phone) {
        Some(d) => Some(d.features.clone()),
        None if inner.cfg.all_reachable => {
            Some(ALL_FEATURES.iter().map(|f| (*f).to_owned()).collect())
        }
        None => None,
    }
}

pub(super) async fn capabilities(
    inner: web::Data<Inner>,
    req: HttpRequest,
    phone: web::Path<String>,
) -> HttpResponse {
    if let Some(r) = unauthorized(&inner, &req) {
        return r;
    }
    let q = query(&req);
    if let Some(r) = wrong_agent(&inner, &q) {
        return r;
    }
    if !q.contains_key("requestId") {
        return google_error(400, "INVALID_ARGUMENT", "requestId is required.");
    }
    if !valid_phone(&phone) {
        return google_error(400, "INVALID_ARGUMENT", "Invalid phone number.");
    }
    let mut st = lock(&inner);
    st.capability_requests += 1;
    match features_of(&inner, &st, &phone) {
        Some(f) => HttpResponse::Ok().json(json!({ "features": f })),
        None => google_error(404, "NOT_FOUND", "Requested entity was not found."),
    }
}

/// Numbers per users:batchGet call.
pub const BATCH_GET_MAX: usize = 10_000;

pub(super) async fn batch_get(
    inner: web::Data<Inner>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    if let Some(r) = unauthorized(&inner, &req) {
        return r;
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.");
    };
    let q: HashMap<String, String> = v["agentId"]
        .as_str()
        .map(|a| [("agentId".to_owned(), a.to_owned())].into())
        .unwrap_or_default();
    if let Some(r) = wrong_agent(&inner, &q) {
        return r;
    }
    let Some(users) = v["users"].as_array() else {
        return google_error(400, "INVALID_ARGUMENT", "users is required.");
    };
    if users.len() > BATCH_GET_MAX {
        return google_error(400, "INVALID_ARGUMENT", "At most 10000 users per request.");
    }
    let mut st = lock(&inner);
    st.batch_requests += 1;
    if let Some(code) = st.fail_next_batch.pop_front() {
        return google_error(code, "UNAVAILABLE", "Simulated failure.");
    }
    let reachable: Vec<&str> = users
        .iter()
        .filter_map(Value::as_str)
        .filter(|p| features_of(&inner, &st, p).is_some())
        .collect();
    HttpResponse::Ok().json(json!({
        "reachableUsers": reachable,
        "totalRandomSampleUserCount": 0,
        "reachableRandomSampleUserCount": 0,
    }))
}

pub(super) fn ttl_of(v: &Value) -> Option<Duration> {
    let s = v["ttl"].as_str()?.strip_suffix('s')?.parse::<f64>().ok()?;
    Duration::try_from_secs_f64(s).ok()
}

pub(super) async fn create(
    inner: web::Data<Inner>,
    req: HttpRequest,
    phone: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    if let Some(r) = unauthorized(&inner, &req) {
        return r;
    }
    let q = query(&req);
    if let Some(r) = wrong_agent(&inner, &q) {
        return r;
    }
    let Some(id) = q
        .get("messageId")
        .filter(|m| uuid::Uuid::try_parse(m).is_ok())
        .cloned()
    else {
        return google_error(400, "INVALID_ARGUMENT", "messageId must be a UUID.");
    };
    if !valid_phone(&phone) {
        return google_error(400, "INVALID_ARGUMENT", "Invalid phone number.");
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.");
    };
    if let Some(code) = lock(&inner).fail_next.pop_front() {
        let reason = match code {
            429 => "RESOURCE_EXHAUSTED",
            500 => "INTERNAL",
            503 => "UNAVAILABLE",
            _ => "UNKNOWN",
        };
        return google_error(code, reason, "Simulated failure.");
    }
    if let Err(e) = validate_agent_message(&v) {
        return google_error(400, "INVALID_ARGUMENT", &format!("Invalid value at '{e}'"));
    }
    if let Some(f) = v["contentMessage"].get("uploadedRbmFile") {
        let known = f["fileName"]
            .as_str()
            .is_some_and(|n| lock(&inner).files.contains_key(n));
        if !known {
            return google_error(
                400,
                "INVALID_ARGUMENT",
                "Invalid value at 'agent_message.content_message.uploaded_rbm_file.file_name'",
            );
        }
    }
    if inner.cfg.multi_use
        && v["messageTrafficType"]
            .as_str()
            .is_none_or(|t| t == "MESSAGE_TRAFFIC_TYPE_UNSPECIFIED")
    {
        return google_error(
            400,
            "INVALID_ARGUMENT",
            "A multi-use agent must set messageTrafficType on every message.",
        );
    }
    {
        let mut st = lock(&inner);
        if features_of(&inner, &st, &phone).is_none() {
            return google_error(404, "NOT_FOUND", "Requested entity was not found.");
        }
        if st.messages.contains_key(&id) {
            return google_error(409, "ALREADY_EXISTS", "Requested entity already exists");
        }
        st.messages.insert(
            id.clone(),
            SimMessage {
                phone: phone.clone(),
                state: SimState::Pending,
                expires_at: ttl_of(&v).map(|t| Instant::now() + t),
            },
        );
        st.received.push((phone.clone(), id.clone(), v.clone()));
    }
    tokio::spawn(deliver(inner.clone().into_inner(), id.clone(), false));
    let mut out = v;
    out["name"] = json!(format!("phones/{phone}/agentMessages/{id}"));
    out["sendTime"] = json!(rfc3339_now());
    HttpResponse::Ok().json(out)
}

/// `POST /v1/files` (files.create, the metadata form): RBM fetches `fileUrl` and
/// answers the file's name.
pub(super) async fn create_file(
    inner: web::Data<Inner>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    if let Some(r) = unauthorized(&inner, &req) {
        return r;
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.");
    };
    let mut q = query(&req);
    if let Some(a) = v["agentId"].as_str() {
        q.insert("agentId".into(), a.to_owned());
    }
    if let Some(r) = wrong_agent(&inner, &q) {
        return r;
    }
    let Some(url) = v["fileUrl"]
        .as_str()
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
    else {
        return google_error(400, "INVALID_ARGUMENT", "Invalid value at 'file_url'");
    };
    let name = format!("files/{}", random_id());
    lock(&inner).files.insert(name.clone(), url.to_owned());
    HttpResponse::Ok().json(json!({ "name": name }))
}

/// `POST /v1/phones/{phone}/agentEvents?eventId=&agentId=`: READ of a message this
/// user sent, or IS_TYPING.
pub(super) async fn agent_event(
    inner: web::Data<Inner>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    if let Some(r) = unauthorized(&inner, &req) {
        return r;
    }
    let q = query(&req);
    if let Some(r) = wrong_agent(&inner, &q) {
        return r;
    }
    if q.get("eventId").is_none_or(|e| e.is_empty()) {
        return google_error(400, "INVALID_ARGUMENT", "eventId is required.");
    }
    let phone = path.into_inner();
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.");
    };
    let mut st = lock(&inner);
    match v["eventType"].as_str() {
        Some("READ") => {
            let known = v["messageId"]
                .as_str()
                .is_some_and(|id| st.user_messages.get(id) == Some(&phone));
            if !known {
                return google_error(404, "NOT_FOUND", "Requested entity was not found.");
            }
        }
        Some("IS_TYPING") => {}
        _ => {
            return google_error(
                400,
                "INVALID_ARGUMENT",
                "Invalid value at 'agent_event.event_type'",
            );
        }
    }
    st.agent_events.push((phone, v.clone()));
    HttpResponse::Ok().json(v)
}

pub(super) async fn revoke(
    inner: web::Data<Inner>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    if let Some(r) = unauthorized(&inner, &req) {
        return r;
    }
    if let Some(r) = wrong_agent(&inner, &query(&req)) {
        return r;
    }
    let (phone, id) = path.into_inner();
    let mut st = lock(&inner);
    if inner.cfg.revoke_unconfirmed {
        return HttpResponse::Ok().json(json!({}));
    }
    match st.messages.get_mut(&id) {
        Some(m) if m.phone == phone && m.state == SimState::Pending => {
            m.state = SimState::Revoked;
            HttpResponse::Ok().json(json!({}))
        }
        _ => google_error(404, "NOT_FOUND", "Requested entity was not found."),
    }
}
