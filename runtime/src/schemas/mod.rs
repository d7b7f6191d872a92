//! Schemas as a contract: export every registered event's JSON Schema, a Confluent Schema Registry
//! index and an AsyncAPI 3.0 document to a directory, and check the committed files against the
//! code — drift fails, and so does a change that breaks readers of the same schema version.
//!
//! `inventory` sees only what is linked into the running binary, so a crate checks its own events
//! from a test in that crate:
//!
//! ```no_run
//! // tests/schemas.rs of the crate that declares the events
//! # use my_service as _;
//! # mod my_service {}
//! use my_service as _; // link the events (and handlers) in
//!
//! #[test]
//! fn schemas_are_up_to_date() {
//!     herald::assert_schemas_up_to_date!("schemas");
//! }
//! ```
//!
//! Run it with `HERALD_UPDATE_SCHEMAS=1` to write missing files and compatible changes, then commit
//! them. See `docs/schemas.md` for the rules.

pub mod asyncapi;
pub mod compat;
pub mod export;

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use crate::registry::Registry;

/// What went wrong for one file of the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What kind of problem.
    pub kind: ProblemKind,
    /// The file concerned (in the schemas directory).
    pub file: PathBuf,
    /// What happened and what to do.
    pub message: String,
}

/// The kinds of [`Problem`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// A change the event's compatibility policy refuses at the same version.
    Breaking,
    /// A file that is not committed yet.
    Missing,
    /// A committed file that differs from what the code exports, without breaking readers.
    OutOfDate,
    /// A file that could not be read, parsed or written, or registrations that conflict.
    Io,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// What [`export()`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Files written (new or changed), relative to the schemas directory.
    pub written: Vec<PathBuf>,
    /// Files that were already up to date.
    pub unchanged: Vec<PathBuf>,
}

/// The variable that makes [`assert_schemas_up_to_date!`](crate::assert_schemas_up_to_date) write
/// instead of only check.
pub const UPDATE_VARIABLE: &str = "HERALD_UPDATE_SCHEMAS";

/// Writes the schemas of every event linked into this binary to `dir`: missing files, and changed
/// ones whose change the event's policy allows at its version. Writes nothing when any change
/// breaks compatibility.
///
/// # Errors
/// Every breaking change (with what to do), unreadable files and registry conflicts.
pub fn export(dir: &Path, title: &str) -> Result<Report, Vec<Problem>> {
    Contract::new(collect()?, title).export(dir)
}

/// Checks the schemas committed in `dir` against every event linked into this binary.
///
/// # Errors
/// Every missing or out-of-date file and every breaking change, each with what to do.
pub fn check(dir: &Path, title: &str) -> Result<(), Vec<Problem>> {
    Contract::new(collect()?, title).check(dir)
}

fn collect() -> Result<Registry, Vec<Problem>> {
    Registry::collect().map_err(|error| {
        vec![Problem {
            kind: ProblemKind::Io,
            file: PathBuf::new(),
            message: error.to_string(),
        }]
    })
}

/// The check behind [`assert_schemas_up_to_date!`](crate::assert_schemas_up_to_date): exports when
/// `HERALD_UPDATE_SCHEMAS=1`, else checks; panics with every problem.
pub fn assert_up_to_date(dir: &Path, title: &str) {
    let update = std::env::var(UPDATE_VARIABLE).is_ok_and(|v| v == "1");
    let result = if update {
        export(dir, title).map(|_| ())
    } else {
        check(dir, title)
    };
    if let Err(problems) = result {
        let lines: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
        panic!(
            "the schemas in {} do not match the code:\n{}",
            dir.display(),
            lines.join("\n")
        );
    }
}

/// Checks (or, with `HERALD_UPDATE_SCHEMAS=1`, updates) the schemas committed in a directory of the
/// calling crate (relative to its `Cargo.toml`) against the events linked into the test binary, and
/// panics with every problem. Titles the AsyncAPI document with the crate's name.
#[macro_export]
macro_rules! assert_schemas_up_to_date {
    ($dir:expr) => {
        $crate::schemas::assert_up_to_date(
            &::std::path::Path::new(::core::env!("CARGO_MANIFEST_DIR")).join($dir),
            ::core::env!("CARGO_PKG_NAME"),
        )
    };
}

/// The contract of a registry: the files it exports and the check of committed ones.
#[derive(Debug, Clone)]
pub struct Contract {
    registry: Registry,
    title: String,
}

/// The state of one file of the contract on disk.
enum State {
    Same,
    Write,
}

impl Contract {
    /// The contract of `registry`; `title` names the service in the AsyncAPI document.
    pub fn new(registry: Registry, title: &str) -> Self {
        Self {
            registry,
            title: title.to_owned(),
        }
    }

    /// Every file of the export and its text, by path relative to the schemas directory.
    pub fn files(&self) -> std::collections::BTreeMap<PathBuf, String> {
        export::files(&self.registry, &self.title)
    }

    /// Checks the files committed in `dir`.
    ///
    /// # Errors
    /// Every missing or out-of-date file and every breaking change.
    pub fn check(&self, dir: &Path) -> Result<(), Vec<Problem>> {
        let (_, mut problems) = self.compare(dir);
        for problem in &mut problems {
            if problem.kind != ProblemKind::Breaking && problem.kind != ProblemKind::Io {
                problem.message.push_str(&format!(
                    " — run the schema test with {UPDATE_VARIABLE}=1 (or `herald schemas export`) \
                     and commit the result"
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Writes missing files and allowed changes to `dir`; writes nothing when a change breaks
    /// compatibility.
    ///
    /// # Errors
    /// Every breaking change, and files that cannot be read or written.
    pub fn export(&self, dir: &Path) -> Result<Report, Vec<Problem>> {
        let (states, problems) = self.compare(dir);
        let refused: Vec<Problem> = problems
            .into_iter()
            .filter(|p| matches!(p.kind, ProblemKind::Breaking | ProblemKind::Io))
            .collect();
        if !refused.is_empty() {
            return Err(refused);
        }
        let mut report = Report::default();
        let mut failures = Vec::new();
        for (file, text, state) in states {
            match state {
                State::Same => report.unchanged.push(file),
                State::Write => {
                    let path = dir.join(&file);
                    let written = path
                        .parent()
                        .map_or(Ok(()), fs::create_dir_all)
                        .and_then(|()| fs::write(&path, text));
                    match written {
                        Ok(()) => report.written.push(file),
                        Err(error) => failures.push(Problem {
                            kind: ProblemKind::Io,
                            message: format!(
                                "cannot write {}: {error} — check that the directory is writable",
                                path.display()
                            ),
                            file,
                        }),
                    }
                }
            }
        }
        if failures.is_empty() {
            Ok(report)
        } else {
            Err(failures)
        }
    }

    /// Each file with its text and whether it needs writing, and the problems found.
    fn compare(&self, dir: &Path) -> (Vec<(PathBuf, String, State)>, Vec<Problem>) {
        let mut files = self.files();
        let mut states = Vec::new();
        let mut problems = Vec::new();
        for event in self.registry.events() {
            let file = export::schema_path(event);
            let text = files.remove(&file).expect("every event has a schema file");
            let name = event
                .rust_type
                .rsplit("::")
                .next()
                .unwrap_or(event.rust_type);
            let label = format!("{name} v{}", event.version);
            let state = match read(dir, &file) {
                Err(problem) => {
                    problems.push(problem);
                    continue;
                }
                Ok(None) => {
                    problems.push(Problem {
                        kind: ProblemKind::Missing,
                        message: format!(
                            "{label}: no committed schema at {}",
                            dir.join(&file).display()
                        ),
                        file: file.clone(),
                    });
                    State::Write
                }
                Ok(Some(committed)) if committed == text => State::Same,
                Ok(Some(committed)) => {
                    let committed: serde_json::Value = match serde_json::from_str(&committed) {
                        Ok(value) => value,
                        Err(error) => {
                            problems.push(Problem {
                                kind: ProblemKind::Io,
                                message: format!(
                                    "{label}: {} is not JSON ({error}) — restore it from version \
                                     control",
                                    dir.join(&file).display()
                                ),
                                file,
                            });
                            continue;
                        }
                    };
                    let current = (event.schema)();
                    let breaking = compat::breaking(&committed, &current, event.compat);
                    if breaking.is_empty() {
                        problems.push(Problem {
                            kind: ProblemKind::OutOfDate,
                            message: format!(
                                "{label}: the schema changed compatibly (policy {}) and {} is out \
                                 of date",
                                event.compat.as_str(),
                                dir.join(&file).display()
                            ),
                            file: file.clone(),
                        });
                    }
                    for change in breaking {
                        problems.push(Problem {
                            kind: ProblemKind::Breaking,
                            message: format!("{label}: {}", change.describe(event.version + 1)),
                            file: file.clone(),
                        });
                    }
                    State::Write
                }
            };
            states.push((file, text, state));
        }
        for (file, text) in files {
            let state = match read(dir, &file) {
                Err(problem) => {
                    problems.push(problem);
                    continue;
                }
                Ok(Some(committed)) if committed == text => State::Same,
                Ok(found) => {
                    problems.push(Problem {
                        kind: if found.is_some() {
                            ProblemKind::OutOfDate
                        } else {
                            ProblemKind::Missing
                        },
                        message: format!(
                            "{} {}",
                            dir.join(&file).display(),
                            if found.is_some() {
                                "is out of date"
                            } else {
                                "is missing"
                            }
                        ),
                        file: file.clone(),
                    });
                    State::Write
                }
            };
            states.push((file, text, state));
        }
        (states, problems)
    }
}

/// The text of a committed file, `None` when there is none.
fn read(dir: &Path, file: &Path) -> Result<Option<String>, Problem> {
    match fs::read_to_string(dir.join(file)) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(Problem {
            kind: ProblemKind::Io,
            message: format!("cannot read {}: {error}", dir.join(file).display()),
            file: file.to_owned(),
        }),
    }
}
