//! The console under `/console`: server-rendered pages (maud, compiled into the binary;
//! one stylesheet and one small script of our own, no build step). A tenant signs in
//! with an API key, the operator with the admin token; the session is server-side (a
//! row in `console_sessions`, the cookie holds only a random token: HttpOnly,
//! SameSite=Strict) and every form carries the session's CSRF token.

mod layout;
mod messages;
mod operator;
mod pages;
mod session;

use actix_web::{HttpResponse, web};

pub use session::{COOKIE, ConsoleOptions};

/// One console route: method, path and handler.
pub(crate) struct ConsoleRoute {
    pub(crate) method: &'static str,
    pub(crate) path: &'static str,
    mount: fn(&mut web::ServiceConfig),
}

macro_rules! console_routes {
    ($($method:ident $path:literal => $handler:path;)+) => {
        /// Every console route: the one list that mounts them (and that tests walk).
        pub(crate) fn routes() -> Vec<ConsoleRoute> {
            vec![$(ConsoleRoute {
                method: stringify!($method),
                path: $path,
                mount: |cfg| {
                    cfg.route($path, web::$method().to($handler));
                },
            }),+]
        }
    };
}

console_routes! {
    get "/console" => pages::home;
    get "/console/assets/console.css" => layout::css;
    get "/console/assets/console.js" => layout::js;
    get "/console/login" => session::login_page;
    post "/console/login" => session::login;
    post "/console/logout" => session::logout;
    get "/console/overview" => messages::overview;
    get "/console/messages" => messages::messages;
    post "/console/messages" => messages::send;
    get "/console/messages/{id}" => messages::message;
    post "/console/messages/{id}/cancel" => messages::cancel;
    get "/console/channels" => pages::channels;
    get "/console/webhooks" => pages::webhooks;
    post "/console/webhooks/deliveries/{id}/retry" => pages::retry_delivery;
    get "/console/templates" => pages::templates;
    post "/console/templates/{id}/preview" => pages::preview;
    get "/console/hooks" => pages::hooks;
    get "/console/opt-outs" => pages::opt_outs;
    get "/console/keys" => pages::keys;
    post "/console/keys" => pages::create_key;
    post "/console/keys/{id}/revoke" => pages::revoke_key;
    get "/console/audit" => pages::audit;
    get "/console/audit/export" => pages::audit_export;
    get "/console/tenants" => operator::tenants;
    post "/console/tenants" => operator::create_tenant;
    post "/console/tenants/{id}" => operator::update_tenant;
    get "/console/operations" => operator::operations;
}

/// `(method, path)` of every console route.
pub fn route_table() -> Vec<(String, String)> {
    routes()
        .into_iter()
        .map(|r| (r.method.to_ascii_uppercase(), r.path.to_owned()))
        .collect()
}

/// Mounts the console.
pub(crate) fn mount(cfg: &mut web::ServiceConfig) {
    for r in routes() {
        (r.mount)(cfg);
    }
}

/// A redirect after a form (`303 See Other`).
pub(crate) fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, to))
        .finish()
}

/// The flash a redirect asked for (`?ok=` / `?error=`).
pub(crate) fn flash(q: &std::collections::HashMap<String, String>) -> Option<layout::Flash> {
    if let Some(e) = q.get("error") {
        return Some(layout::Flash::Error(e.clone()));
    }
    q.get("ok").map(|m| layout::Flash::Info(m.clone()))
}

/// Back to `to` with an error to show (a refused form).
pub(crate) fn back_with(to: &str, e: &crate::ApiError) -> HttpResponse {
    let sep = if to.contains('?') { '&' } else { '?' };
    see_other(&format!("{to}{sep}error={}", encode(&e.to_string())))
}

/// Percent-encodes a query value.
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An error on a console page: the API's status, as a small HTML page.
#[derive(Debug)]
pub(crate) struct ConsoleError(pub(crate) crate::ApiError);

impl From<crate::ApiError> for ConsoleError {
    fn from(e: crate::ApiError) -> Self {
        ConsoleError(e)
    }
}

impl From<hermod_core::ports::PortError> for ConsoleError {
    fn from(e: hermod_core::ports::PortError) -> Self {
        ConsoleError(e.into())
    }
}

impl std::fmt::Display for ConsoleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl actix_web::ResponseError for ConsoleError {
    fn status_code(&self) -> actix_web::http::StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        // The API's response logs what must be logged; the page says what happened.
        let _ = self.0.error_response();
        let status = self.0.status_code();
        let message = match &self.0 {
            crate::ApiError::Internal(_) | crate::ApiError::Unavailable(_) => {
                "Something went wrong on the server; it is logged.".to_owned()
            }
            e => e.to_string(),
        };
        layout::page_bare(
            status.canonical_reason().unwrap_or("Error"),
            maud::html! {
                main.login {
                    h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
                    p.flash.error role="alert" { (message) }
                    p { a href="/console" { "Back to the console" } }
                }
            },
            status,
        )
    }
}
