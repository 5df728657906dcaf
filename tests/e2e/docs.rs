//! The documentation's shell examples run as printed. Every ```sh block of the README,
//! the quickstart and the guides (`PAGES`; but those tagged `norun`: commands that
//! build Hermod, run this suite, or need what the demo does not have — PostgreSQL, a
//! real SMSC, the benchmark rig) runs with bash in the directory of a `hermod demo`, one
//! step after the other, with the variables of the steps before; `hermod` is the binary
//! under test. A step ends at its `# → ` lines: what it prints must hold each piece of
//! them (split at `…`, whitespace ignored), in order. A step that only reads (no `-X`,
//! no `-d`) is run again until it does, for up to 30 s — "a second later" in a page is
//! not a wait the test depends on.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{eventually, free_port};

/// The pages whose examples run.
const PAGES: &[&str] = &[
    "README.md",
    "docs/src/getting-started/quickstart.md",
    "docs/src/getting-started/quickstart-code.md",
    "docs/src/guides/app.md",
    "docs/src/guides/inbound.md",
    "docs/src/guides/rcs.md",
    "docs/src/guides/rbm-onboarding.md",
    "docs/src/concepts/fallback.md",
    "docs/src/guides/alerts.md",
    "docs/src/guides/templates.md",
    "docs/src/guides/campaigns.md",
    "docs/src/guides/quiet-hours.md",
    "docs/src/guides/smpp.md",
    "docs/src/guides/webhooks.md",
    "docs/src/concepts/tenants.md",
    "docs/src/guides/console.md",
    "docs/src/guides/twilio.md",
    "docs/src/guides/smpp-server.md",
    "docs/src/guides/sms-providers.md",
    // Last: it erases the walkthrough's recipient.
    "docs/src/guides/compliance.md",
];

#[derive(Debug)]
struct Step {
    /// Where the step starts: page and line.
    at: String,
    code: String,
    expect: Vec<String>,
}

/// The runnable ```sh blocks of a page: (first line number, text).
fn blocks(page: &str, md: &str) -> Vec<(usize, String)> {
    enum In {
        Prose,
        Sh(usize, String),
        Other,
    }
    let mut out = Vec::new();
    let mut at = In::Prose;
    for (i, line) in md.lines().enumerate() {
        let fence = line.trim_start().strip_prefix("```");
        at = match (at, fence) {
            (In::Prose, Some(info)) => {
                let tags: Vec<&str> = info.split([',', ' ']).map(str::trim).collect();
                if tags.first() == Some(&"sh") && !tags.contains(&"norun") {
                    In::Sh(i + 2, String::new())
                } else {
                    In::Other
                }
            }
            (In::Sh(start, text), Some(_)) => {
                out.push((start, text));
                In::Prose
            }
            (In::Sh(start, mut text), None) => {
                text.push_str(line);
                text.push('\n');
                In::Sh(start, text)
            }
            (In::Other, Some(_)) => In::Prose,
            (keep, None) => keep,
        };
    }
    assert!(
        matches!(at, In::Prose),
        "{page}: a code block is not closed"
    );
    out
}

/// A block's steps: each ends after its `# → ` lines (and their `#   ` continuations).
fn steps(page: &str, first: usize, block: &str) -> Vec<Step> {
    let mut out = Vec::new();
    let (mut code, mut expect, mut at) = (String::new(), Vec::<String>::new(), first);
    for (i, line) in block.lines().enumerate() {
        if let Some(e) = line.strip_prefix("# → ") {
            expect.push(e.to_owned());
            continue;
        }
        if !expect.is_empty()
            && let Some(e) = line.strip_prefix("#   ")
        {
            if let Some(last) = expect.last_mut() {
                last.push_str(e);
            }
            continue;
        }
        if !expect.is_empty() {
            out.push(Step {
                at: format!("{page}:{at}"),
                code: std::mem::take(&mut code),
                expect: std::mem::take(&mut expect),
            });
            at = first + i;
        }
        code.push_str(line);
        code.push('\n');
    }
    if !code.trim().is_empty() || !expect.is_empty() {
        out.push(Step {
            at: format!("{page}:{at}"),
            code,
            expect,
        });
    }
    out
}

fn squeeze(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Whether `out` holds every piece of every expectation, in order.
fn holds(expect: &[String], out: &str) -> bool {
    let out = squeeze(out);
    let mut from = 0;
    for e in expect {
        for piece in e.split('…').map(squeeze).filter(|p| !p.is_empty()) {
            match out[from..].find(&piece) {
                Some(i) => from += i + piece.len(),
                None => return false,
            }
        }
    }
    true
}

/// The step's shell commands: lines joined over `\` ends and open single quotes.
fn commands(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in code.lines() {
        cur.push_str(line);
        cur.push('\n');
        let open_quote = cur.matches('\'').count() % 2 == 1;
        if !line.ends_with('\\') && !open_quote {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// What of a step may run again until its output is there: all of it when it only
/// reads, else the reads after its last write (the `GET` after a `POST`).
fn rereadable(code: &str) -> Option<String> {
    if read_only(code) {
        return Some(code.to_owned());
    }
    let cmds = commands(code);
    let last_write = cmds.iter().rposition(|c| !read_only(c))?;
    let tail: String = cmds[last_write + 1..].concat();
    (!tail.trim().is_empty()).then_some(tail)
}

fn read_only(code: &str) -> bool {
    !code.contains(" -X ") && !code.contains(" -d ") && !code.contains(" -d'")
}

/// Runs one step in `dir`: the variables of earlier steps come from `state` and go
/// back there. Returns the exit status and what it printed.
fn run(dir: &Path, state: &Path, bin_dir: &Path, code: &str) -> (bool, String) {
    let script = format!(
        "set -ae\n[ -f '{s}' ] && source '{s}'\n{code}\nexport -p > '{s}'\n",
        s = state.display()
    );
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .env("PATH", path)
        .stdin(Stdio::null())
        .output()
        .expect("bash");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

struct Demo(std::process::Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_block_parser_finds_steps_and_their_output() {
    let md = "x\n```sh norun\ncargo run\n```\n```toml\na = 1\n```\n```sh\nA=1\necho $A\n# → 1…\n#   2\nls\n```\n";
    let b = blocks("p", md);
    assert_eq!(b.len(), 1, "{b:?}");
    let s = steps("p", b[0].0, &b[0].1);
    assert_eq!(s.len(), 2, "{s:?}");
    assert_eq!(s[0].code, "A=1\necho $A\n");
    assert_eq!(s[0].expect, ["1…2"]);
    assert_eq!(s[1].code, "ls\n");
    assert!(holds(&s[0].expect, "1 and 2"));
    assert!(!holds(&s[0].expect, "2 and 1"));
    let step = "ID=$(curl -s -X POST u \\\n  -d '{\n \"a\": 1}' | cut)\ncurl -s \"u/$ID\"\n";
    assert_eq!(commands(step).len(), 2, "{:?}", commands(step));
    assert_eq!(rereadable(step).as_deref(), Some("curl -s \"u/$ID\"\n"));
    assert_eq!(rereadable("curl -s -X POST u\n"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_shell_example_of_the_docs_works_as_printed() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_hermod"));
    let bin_dir = bin.parent().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let demo = Command::new(&bin)
        .args(["demo", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(dir.path())
        .env("HERMOD_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _demo = Demo(demo);
    let env_file = dir.path().join("hermod-data/demo.env");
    let client = reqwest::Client::new();
    let health = format!("http://127.0.0.1:{port}/healthz");
    eventually("the demo to answer", Duration::from_secs(30), || async {
        env_file.exists() && client.get(&health).send().await.is_ok()
    })
    .await;
    // The pages' commands run from the repository's root: its example programs are
    // where the pages say.
    for d in ["examples", "scripts"] {
        std::os::unix::fs::symlink(root.join(d), dir.path().join(d)).unwrap();
    }
    let state = dir.path().join(".state");
    let mut ran = 0;
    for page in PAGES {
        let md = std::fs::read_to_string(root.join(page)).unwrap();
        for (first, block) in blocks(page, &md) {
            for step in steps(page, first, &block) {
                let deadline = Instant::now() + Duration::from_secs(30);
                let again = rereadable(&step.code);
                let mut code = step.code.clone();
                loop {
                    let (ok, out) = run(dir.path(), &state, &bin_dir, &code);
                    if ok && holds(&step.expect, &out) {
                        break;
                    }
                    code = again.clone().unwrap_or_default();
                    if step.expect.is_empty() || again.is_none() || Instant::now() > deadline {
                        panic!(
                            "{}: the example {}\n{}\nprinted:\n{out}\nexpected: {:?}",
                            step.at,
                            if ok {
                                "did not print what the page says"
                            } else {
                                "failed"
                            },
                            step.code,
                            step.expect
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                ran += 1;
            }
        }
    }
    assert!(ran >= 8, "only {ran} steps found");
}

/// docs/src/reference/cli.md is what `hermod docs cli` prints: the help of every
/// command, so the page cannot drift from the binary.
#[test]
fn the_cli_reference_is_what_the_binary_says() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO_BIN_EXE_hermod"))
        .args(["docs", "cli"])
        .env_remove("HERMOD_URL")
        .env_remove("HERMOD_API_KEY")
        .env_remove("HERMOD_ADMIN_TOKEN")
        .env_remove("HERMOD_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    for cmd in [
        "`hermod serve`",
        "`hermod sim device`",
        "`hermod keys create`",
    ] {
        assert!(printed.contains(cmd), "{cmd} is not in the reference");
    }
    let page = std::fs::read_to_string(root.join("docs/src/reference/cli.md")).unwrap();
    assert!(
        page == printed,
        "docs/src/reference/cli.md is not what the binary says: \
         run `hermod docs cli > docs/src/reference/cli.md`"
    );
}

/// docs/src/reference/configuration.md is what `hermod docs config` prints: every key
/// of the settings with its type, default, variable and doc comment.
#[test]
fn the_configuration_reference_is_what_the_binary_says() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO_BIN_EXE_hermod"))
        .args(["docs", "config"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    for key in [
        "`in_doubt_grace_secs`",
        "`queue_expires_secs`",
        "`inbound_part_timeout_secs`",
    ] {
        assert!(printed.contains(key), "{key} is not in the reference");
    }
    let page = std::fs::read_to_string(root.join("docs/src/reference/configuration.md")).unwrap();
    assert!(
        page == printed,
        "docs/src/reference/configuration.md is not what the binary says: \
         run `hermod docs config > docs/src/reference/configuration.md`"
    );
    // The schema is JSON Schema an editor can use, with the same keys.
    let out = Command::new(env!("CARGO_BIN_EXE_hermod"))
        .args(["docs", "config-schema"])
        .output()
        .unwrap();
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert!(schema["properties"]["workers"].is_object());
}

/// docs/src/reference/http-api.md is the OpenAPI document rendered by `hermod docs api`.
#[test]
fn the_http_api_reference_is_what_the_binary_says() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO_BIN_EXE_hermod"))
        .args(["docs", "api"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    for op in [
        "### `POST /v1/messages`",
        "### `GET /v1/messages/{id}`",
        "### SendMessage",
    ] {
        assert!(printed.contains(op), "{op} is not in the reference");
    }
    let page = std::fs::read_to_string(root.join("docs/src/reference/http-api.md")).unwrap();
    assert!(
        page == printed,
        "docs/src/reference/http-api.md is not what the binary says: \
         run `hermod docs api > docs/src/reference/http-api.md`"
    );
}

/// Only the variables that name settings are read: what Kubernetes injects into every
/// pod of a service named `hermod` and the commands' own variables do not stop the
/// server; a near miss is warned about by name; a bad value is one line naming the
/// setting and the variable or file it came from.
#[test]
fn environment_variables_that_are_not_settings_are_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let hermod = |envs: &[(&str, &str)], args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_hermod"))
            .arg("migrate")
            .args(args)
            .env("HERMOD_DATA_DIR", dir.path())
            .env("HERMOD_LOG", "warn")
            .env_remove("HERMOD_DATABASE_URL")
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .envs(envs.iter().copied())
            .output()
            .unwrap();
        // Logs (the warnings) go to stdout, the error to stderr.
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    };
    let (ok, err) = hermod(
        &[
            ("HERMOD_SERVICE_HOST", "10.96.0.12"),
            ("HERMOD_SERVICE_PORT", "8080"),
            ("HERMOD_PORT", "tcp://10.96.0.12:8080"),
            ("HERMOD_PORT_8080_TCP_ADDR", "10.96.0.12"),
            ("HERMOD_API_KEY", "hmk_x"),
            ("HERMOD_URL", "http://127.0.0.1:1"),
        ],
        &[],
    );
    assert!(ok, "{err}");
    assert!(!err.contains("WARN"), "nothing to warn about: {err}");
    let (ok, err) = hermod(&[("HERMOD_WORKER__BATCH", "64")], &[]);
    assert!(ok, "{err}");
    assert!(
        err.contains(
            "ignoring HERMOD_WORKER__BATCH: not a setting; did you mean HERMOD_WORKERS__BATCH?"
        ),
        "{err}"
    );
    let (ok, err) = hermod(&[("HERMOD_WORKERS__BATCH", "many")], &[]);
    assert!(!ok);
    assert!(
        err.contains(
            "setting workers.batch (environment variable HERMOD_WORKERS__BATCH): invalid type"
        ),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("Error: setting "), "{err}");
    let file = dir.path().join("hermod.toml");
    std::fs::write(&file, "[smpp]\nwindw = 3\n").unwrap();
    let (ok, err) = hermod(&[], &["--config", file.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "setting smpp.windw ({}): unknown key (expected one of",
            file.display()
        )),
        "{err}"
    );
}

/// Every relative link of the README, the repository's other pages and the book names
/// a file that is there (mdBook does not check links).
#[test]
fn every_relative_link_of_the_docs_resolves() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut pages: Vec<PathBuf> = [
        "README.md",
        "CONTRIBUTING.md",
        "SECURITY.md",
        "CHANGELOG.md",
    ]
    .iter()
    .map(|p| root.join(p))
    .collect();
    let mut dirs = vec![root.join("docs/src")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "md") {
                pages.push(p);
            }
        }
    }
    assert!(pages.len() > 20, "{} pages", pages.len());
    let mut broken = Vec::new();
    for page in &pages {
        let md = std::fs::read_to_string(page).unwrap();
        let mut fence = false;
        for line in md.lines() {
            if line.trim_start().starts_with("```") {
                fence = !fence;
            }
            if fence {
                continue;
            }
            for (i, _) in line.match_indices("](") {
                let rest = &line[i + 2..];
                let Some(end) = rest.find(')') else { continue };
                let target = rest[..end].split('#').next().unwrap_or("");
                if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                if !page.parent().unwrap().join(target).exists() {
                    broken.push(format!(
                        "{}: {target}",
                        page.strip_prefix(&root).unwrap().display()
                    ));
                }
            }
        }
    }
    assert!(broken.is_empty(), "links to nothing: {broken:#?}");
}

/// docs/src/operations/metrics.md names every metric the code records.
#[test]
fn every_metric_is_documented() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let page = std::fs::read_to_string(root.join("docs/src/operations/metrics.md")).unwrap();
    let mut names = std::collections::BTreeSet::new();
    let mut dirs: Vec<PathBuf> = [
        "api", "channels", "core", "crypto", "queue", "src", "store", "workers",
    ]
    .iter()
    .map(|d| root.join(d))
    .collect();
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let src = std::fs::read_to_string(&p).unwrap();
                for (i, _) in src.match_indices("\"hermod_") {
                    let rest = &src[i + 1..];
                    let end = rest
                        .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                        .unwrap_or(rest.len());
                    // A whole name (not a prefix such as "hermod_" itself).
                    if rest[end..].starts_with('"') && !rest[..end].ends_with('_') {
                        names.insert(rest[..end].to_owned());
                    }
                }
            }
        }
    }
    assert!(names.len() > 15, "{names:?}");
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !page.contains(&format!("`{n}`")))
        .collect();
    assert!(missing.is_empty(), "metrics.md does not name {missing:?}");
}
