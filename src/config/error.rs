//! Every problem found in a config file, each with the key it concerns and what to do.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem: where (`key`, a path such as `mounts[1].download`, or `line 3, column 7` for a
/// syntax error) and what is wrong and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

/// All the problems of one config file. `Display` writes one line per problem:
/// `<file>: <key>: <message>`.
#[derive(Clone, Debug)]
pub struct ConfigError {
    file: PathBuf,
    problems: Vec<Problem>,
}

impl ConfigError {
    pub(super) fn new(file: &Path, problems: Vec<Problem>) -> Self {
        Self {
            file: file.to_path_buf(),
            problems,
        }
    }

    /// A problem that concerns the whole file (it cannot be read).
    pub(super) fn file(file: &Path, message: String) -> Self {
        Self::new(
            file,
            vec![Problem {
                key: String::new(),
                message,
            }],
        )
    }

    /// A TOML syntax error, located by line and column (both from 1).
    pub(super) fn syntax(file: &Path, text: &str, err: &toml::de::Error) -> Self {
        let key = match err.span() {
            Some(span) => {
                let (line, column) = line_column(text, span.start);
                format!("line {line}, column {column}")
            }
            None => String::new(),
        };
        let message = format!("invalid TOML: {}", err.message().trim_end());
        Self::new(file, vec![Problem { key, message }])
    }

    /// Every problem found, in the order they were found.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}: ", self.file.display())?;
            if !problem.key.is_empty() {
                write!(f, "{}: ", problem.key)?;
            }
            f.write_str(&problem.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_from_one() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        assert_eq!(line_column(text, 10), (2, 4));
    }

    #[test]
    fn one_line_per_problem() {
        let err = ConfigError::new(
            Path::new("c.toml"),
            vec![
                Problem {
                    key: "server.listen".into(),
                    message: "bad".into(),
                },
                Problem {
                    key: String::new(),
                    message: "whole file".into(),
                },
            ],
        );
        assert_eq!(
            err.to_string(),
            "c.toml: server.listen: bad\nc.toml: whole file"
        );
    }
}
