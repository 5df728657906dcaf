//! `hermod send --csv file.csv --template T`: a campaign from the command line.
//!
//! - The CSV has a header row. `to` (or `phone`, `number`, `msisdn`) is the recipient;
//!   `locale`, `timezone`, `send_at` and `user_id` are used as such when present; every
//!   other column is a template variable (`order.id` nests as `{"order": {"id": ...}}`).
//! - Rows go out through `POST /v1/messages/batch` in fixed batches. Each batch's
//!   `Idempotency-Key` is derived from the file's and the options' SHA-256 and the
//!   batch's rows, so sending a batch again (a retry, or a resumed run) replays the
//!   first answer instead of sending twice.
//! - Progress is written to a state file after each batch: run the same command again
//!   after an interruption and it resumes after the last batch recorded. The batch
//!   that was in flight is sent again and answered from the server's idempotency
//!   record.
//! - Rows that fail (a bad number, a missing variable) are written to the report file
//!   with the row number, the field and the reason; the rest are sent.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

#[derive(clap::Args)]
pub struct SendArgs {
    /// The campaign's rows.
    #[arg(long)]
    pub csv: PathBuf,
    /// The template every row is rendered with.
    #[arg(long)]
    pub template: String,
    /// The server's base URL.
    #[arg(long, env = "HERMOD_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// An API key of the tenant that owns the template.
    #[arg(long, env = "HERMOD_API_KEY", hide_env_values = true)]
    pub api_key: String,
    /// The locale for rows without a `locale` column.
    #[arg(long)]
    pub locale: Option<String>,
    /// `normal` (default; held by quiet hours) or `high`.
    #[arg(long)]
    pub priority: Option<String>,
    /// Channels in order, e.g. `rcs,sms`; default the tenant's.
    #[arg(long)]
    pub channels: Option<String>,
    /// Rows per request (1 to 1000).
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// Failed rows; default `<csv>.errors.csv`.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Progress, for resuming; default `<csv>.state.json`.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// No progress bar (a line per batch instead).
    #[arg(long)]
    pub quiet: bool,
}

/// What the state file records.
#[derive(Serialize, Deserialize, Default)]
struct State {
    /// SHA-256 of the file and the options: a different campaign starts over.
    campaign: String,
    /// Rows (after the header) done, always a whole number of batches.
    rows_done: usize,
    sent: usize,
    failed: usize,
}

const RESERVED: [&str; 4] = ["locale", "timezone", "send_at", "user_id"];
const TO_COLUMNS: [&str; 4] = ["to", "phone", "number", "msisdn"];

fn with_ext(p: &Path, ext: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(ext);
    PathBuf::from(s)
}

/// Sets `vars.a.b` for the column `a.b`.
fn set_path(vars: &mut serde_json::Map<String, serde_json::Value>, name: &str, value: &str) {
    let mut parts = name.split('.').peekable();
    let mut cur = vars;
    while let Some(p) = parts.next() {
        if parts.peek().is_none() {
            cur.insert(p.to_owned(), value.into());
            return;
        }
        let next = cur
            .entry(p.to_owned())
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
        if !next.is_object() {
            *next = serde_json::Value::Object(Default::default());
        }
        match next.as_object_mut() {
            Some(o) => cur = o,
            None => return,
        }
    }
}

/// One row as a `POST /v1/messages/batch` item, or why it cannot be one.
fn item(
    headers: &csv::StringRecord,
    row: &csv::StringRecord,
    to_col: usize,
    args: &SendArgs,
) -> Result<serde_json::Value, (String, String)> {
    if row.len() != headers.len() {
        return Err((
            "row".into(),
            format!(
                "{} fields where the header has {}",
                row.len(),
                headers.len()
            ),
        ));
    }
    let to = row.get(to_col).unwrap_or_default().trim();
    if to.is_empty() {
        return Err((headers.get(to_col).unwrap_or("to").into(), "empty".into()));
    }
    let mut vars = serde_json::Map::new();
    let mut msg = serde_json::Map::new();
    msg.insert("to".into(), to.into());
    let mut locale = args.locale.clone();
    for (i, (h, v)) in headers.iter().zip(row.iter()).enumerate() {
        if i == to_col {
            continue;
        }
        match h {
            "locale" if !v.is_empty() => locale = Some(v.to_owned()),
            "timezone" | "send_at" | "user_id" if !v.is_empty() => {
                msg.insert(h.into(), v.into());
            }
            h if RESERVED.contains(&h) => {}
            h => set_path(&mut vars, h, v),
        }
    }
    let mut tpl = serde_json::json!({"id": args.template, "vars": vars});
    if let Some(l) = locale {
        tpl["locale"] = l.into();
    }
    msg.insert("template".into(), tpl);
    if let Some(p) = &args.priority {
        msg.insert("priority".into(), p.clone().into());
    }
    if let Some(c) = &args.channels {
        msg.insert(
            "channels".into(),
            c.split(',')
                .map(|s| s.trim().to_owned())
                .collect::<Vec<_>>()
                .into(),
        );
    }
    Ok(serde_json::Value::Object(msg))
}

struct Report {
    path: PathBuf,
    out: csv::Writer<std::fs::File>,
}

impl Report {
    /// Opens the report keeping only rows before `from` (a resumed run writes the
    /// batch in flight again).
    fn open(path: PathBuf, from: usize) -> anyhow::Result<Self> {
        let mut kept = Vec::new();
        if from > 0
            && let Ok(mut r) = csv::Reader::from_path(&path)
        {
            for rec in r.records().flatten() {
                if rec
                    .get(0)
                    .and_then(|n| n.parse::<usize>().ok())
                    .is_some_and(|n| n <= from + 1)
                {
                    kept.push(rec);
                }
            }
        }
        let file = std::fs::File::create(&path)
            .with_context(|| format!("creating the report {}", path.display()))?;
        let mut out = csv::Writer::from_writer(file);
        out.write_record(["line", "to", "field", "error"])?;
        for rec in kept {
            out.write_record(&rec)?;
        }
        out.flush()?;
        Ok(Self { path, out })
    }

    /// `line` is the file's line number (the header is line 1).
    fn add(&mut self, line: usize, to: &str, field: &str, error: &str) -> anyhow::Result<()> {
        self.out
            .write_record([line.to_string().as_str(), to, field, error])?;
        Ok(())
    }

    fn sync(&mut self) -> anyhow::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_data()?;
        Ok(())
    }
}

fn save_state(path: &Path, st: &State) -> anyhow::Result<()> {
    let tmp = with_ext(path, ".tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(serde_json::to_string(st)?.as_bytes())?;
    f.sync_data()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Posts one batch, retrying what can be retried with the same key.
async fn post_batch(
    client: &reqwest::Client,
    args: &SendArgs,
    key: &str,
    body: &serde_json::Value,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let url = format!("{}/v1/messages/batch", args.url.trim_end_matches('/'));
    let mut delay = Duration::from_millis(500);
    for attempt in 1..=8 {
        let r = client
            .post(&url)
            .bearer_auth(&args.api_key)
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await;
        match r {
            Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => {
                let wait = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(Duration::from_secs)
                    .unwrap_or(delay);
                eprintln!(
                    "server answered {}; retrying (attempt {attempt})",
                    r.status()
                );
                tokio::time::sleep(wait).await;
            }
            Ok(r) => {
                let status = r.status().as_u16();
                let v = r.json().await.unwrap_or(serde_json::Value::Null);
                return Ok((status, v));
            }
            Err(e) => {
                eprintln!("request failed ({e}); retrying (attempt {attempt})");
                tokio::time::sleep(delay).await;
            }
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
    bail!("the server did not take the batch; run the same command again to resume")
}

pub async fn run(args: SendArgs) -> anyhow::Result<()> {
    if !(1..=1000).contains(&args.batch) {
        bail!("--batch must be 1 to 1000");
    }
    let bytes =
        std::fs::read(&args.csv).with_context(|| format!("reading {}", args.csv.display()))?;
    let campaign = hermod_crypto::sha256_hex(
        format!(
            "{}\n{}\n{:?}\n{:?}\n{:?}\n{}\n",
            hermod_crypto::sha256_hex(&bytes),
            args.template,
            args.locale,
            args.priority,
            args.channels,
            args.batch
        )
        .as_bytes(),
    );
    let state_path = args
        .state
        .clone()
        .unwrap_or_else(|| with_ext(&args.csv, ".state.json"));
    let report_path = args
        .report
        .clone()
        .unwrap_or_else(|| with_ext(&args.csv, ".errors.csv"));
    let mut st = match std::fs::read(&state_path) {
        Ok(b) => match serde_json::from_slice::<State>(&b) {
            Ok(s) if s.campaign == campaign => s,
            _ => State::default(),
        },
        Err(_) => State::default(),
    };
    st.campaign = campaign.clone();

    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(bytes.as_slice());
    let headers = rdr.headers()?.clone();
    let Some(to_col) = headers
        .iter()
        .position(|h| TO_COLUMNS.contains(&h.trim().to_ascii_lowercase().as_str()))
    else {
        bail!("the CSV header needs a `to` column (or phone, number, msisdn)");
    };
    let rows: Vec<csv::StringRecord> = rdr.records().collect::<Result<_, _>>()?;
    let total = rows.len();
    if st.rows_done > 0 {
        eprintln!(
            "resuming after row {} of {total} ({} sent, {} failed so far)",
            st.rows_done, st.sent, st.failed
        );
    }
    let mut report = Report::open(report_path, st.rows_done)?;

    let bar = if args.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(total as u64)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} rows  {per_sec}  eta {eta}  {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_position(st.rows_done as u64);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;

    let mut start = st.rows_done;
    while start < total {
        let end = (start + args.batch).min(total);
        let mut items = Vec::new();
        // Which row each batch item is (lines are 1-based with the header on line 1).
        let mut index = Vec::new();
        let mut failed_here = Vec::new();
        for (i, row) in rows[start..end].iter().enumerate() {
            let line = start + i + 2;
            let to = row.get(to_col).unwrap_or_default().to_owned();
            match item(&headers, row, to_col, &args) {
                Ok(v) => {
                    items.push(v);
                    index.push((line, to));
                }
                Err((field, why)) => failed_here.push((line, to, field, why)),
            }
        }
        let mut sent = 0;
        if !items.is_empty() {
            let key = format!("csv-{}-{start}-{end}", &campaign[..24]);
            let body = serde_json::json!({"messages": items});
            let (status, v) = post_batch(&client, &args, &key, &body).await?;
            match status {
                202 | 400 if v.get("results").is_some() => {
                    for r in v["results"].as_array().into_iter().flatten() {
                        let i = r["index"].as_u64().unwrap_or(0) as usize;
                        let Some((line, to)) = index.get(i) else {
                            continue;
                        };
                        if r.get("message").is_some() {
                            sent += 1;
                        } else {
                            let field = r["error"]["field"].as_str().unwrap_or_default();
                            // `messages[3].template.vars.name` → `template.vars.name`.
                            let field = field.split_once("].").map_or(field, |(_, f)| f);
                            failed_here.push((
                                *line,
                                to.clone(),
                                field.to_owned(),
                                r["error"]["message"]
                                    .as_str()
                                    .unwrap_or("rejected")
                                    .to_owned(),
                            ));
                        }
                    }
                }
                401 | 403 => bail!("the API key was refused ({status})"),
                _ => bail!("the server refused the batch ({status}): {v}"),
            }
        }
        failed_here.sort_by_key(|f| f.0);
        for (line, to, field, why) in &failed_here {
            report.add(*line, to, field, why)?;
        }
        report.sync()?;
        st.rows_done = end;
        st.sent += sent;
        st.failed += failed_here.len();
        save_state(&state_path, &st)?;
        bar.set_position(end as u64);
        bar.set_message(format!("{} failed", st.failed));
        if args.quiet {
            eprintln!("rows {end}/{total}: {} sent, {} failed", st.sent, st.failed);
        }
        start = end;
    }
    bar.finish();
    println!(
        "done: {total} rows, {} sent, {} failed (report: {})",
        st.sent,
        st.failed,
        report.path.display()
    );
    Ok(())
}
