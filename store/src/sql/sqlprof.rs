//! A statement profile for performance work (cargo feature `sqlprof`, off by
//! default): time and count per SQL statement shape, and per write transaction site
//! the time spent waiting for SQLite's writer gate and holding it. With the feature
//! on and `SQLPROF=<file>` set, the profile is rewritten to that file every 5 s.
//! Without the feature every hook is an empty inline function.

#[cfg(feature = "sqlprof")]
mod on {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    use std::time::{Duration, Instant};

    use diesel::connection::InstrumentationEvent;

    type Stats = HashMap<String, (u64, u128)>;
    type Gates = HashMap<&'static str, (u64, u128, u128)>;

    static STATEMENTS: OnceLock<Mutex<Stats>> = OnceLock::new();
    static GATES: OnceLock<Mutex<Gates>> = OnceLock::new();

    fn target() -> Option<std::path::PathBuf> {
        std::env::var_os("SQLPROF").map(Into::into)
    }

    fn statements() -> &'static Mutex<Stats> {
        STATEMENTS.get_or_init(|| {
            if let Some(path) = target() {
                std::thread::spawn(move || {
                    loop {
                        std::thread::sleep(Duration::from_secs(5));
                        let _ = std::fs::write(&path, report());
                    }
                });
            }
            Mutex::new(HashMap::new())
        })
    }

    /// A statement's shape: without binds, and with `?, ?, ...` lists folded.
    fn shape(q: &str) -> String {
        let q = q.split("-- binds").next().unwrap_or(q);
        let mut out = String::with_capacity(q.len().min(400));
        let mut last_bind = false;
        for part in q.split(", ") {
            let bind = part.trim().trim_end_matches(')').trim_start_matches('(') == "?";
            if bind && last_bind {
                continue;
            }
            if !out.is_empty() {
                out.push_str(", ");
            }
            out.push_str(part);
            last_bind = bind;
        }
        out.chars().take(300).collect()
    }

    fn report() -> String {
        let mut s = String::new();
        if let Some(m) = STATEMENTS.get()
            && let Ok(m) = m.lock()
        {
            let mut v: Vec<_> = m.iter().collect();
            v.sort_by_key(|x| std::cmp::Reverse(x.1.1));
            let total: u128 = v.iter().map(|x| x.1.1).sum();
            s.push_str(&format!("statements: {} ms in all\n", total / 1_000_000));
            for (q, (n, ns)) in v.iter().take(60) {
                let avg = ns / 1000 / u128::from((*n).max(1));
                s.push_str(&format!(
                    "{:8} ms {:8} x {:6} us  {q}\n",
                    ns / 1_000_000,
                    n,
                    avg
                ));
            }
        }
        if let Some(m) = GATES.get()
            && let Ok(m) = m.lock()
        {
            let mut v: Vec<_> = m.iter().collect();
            v.sort_by_key(|x| std::cmp::Reverse(x.1.2));
            s.push_str("\nwrite transactions: site, count, waited ms, held ms, held us each\n");
            for (site, (n, w, h)) in v {
                let avg = h / 1000 / u128::from((*n).max(1));
                s.push_str(&format!(
                    "{site:60} {n:7} {:8} {:8} {avg:6}\n",
                    w / 1_000_000,
                    h / 1_000_000
                ));
            }
        }
        s
    }

    pub fn instrument() -> Option<impl FnMut(InstrumentationEvent<'_>) + Send + 'static> {
        target()?;
        let mut start: Option<Instant> = None;
        Some(move |e: InstrumentationEvent<'_>| match e {
            InstrumentationEvent::StartQuery { .. } => start = Some(Instant::now()),
            InstrumentationEvent::FinishQuery { query, .. } => {
                if let Some(t) = start.take()
                    && let Ok(mut m) = statements().lock()
                {
                    let e = m.entry(shape(&query.to_string())).or_insert((0, 0));
                    e.0 += 1;
                    e.1 += t.elapsed().as_nanos();
                }
            }
            _ => {}
        })
    }

    pub fn gate(site: &'static str, waited: Duration, held: Duration) {
        if target().is_none() {
            return;
        }
        let _ = statements();
        let m = GATES.get_or_init(|| Mutex::new(HashMap::new()));
        if let Ok(mut m) = m.lock() {
            let e = m.entry(site).or_insert((0, 0, 0));
            e.0 += 1;
            e.1 += waited.as_nanos();
            e.2 += held.as_nanos();
        }
    }
}

#[cfg(feature = "sqlprof")]
pub use on::{gate, instrument};

/// Records a write transaction's wait for the writer gate and its time holding it.
#[cfg(not(feature = "sqlprof"))]
#[inline(always)]
pub fn gate(_site: &'static str, _waited: std::time::Duration, _held: std::time::Duration) {}
