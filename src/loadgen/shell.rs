//! Splitting a hey command line into words the way `sh` would, without ever running a shell.
//!
//! flagger-loadtester hands its `cmd` to `sh -c`, so users write shell quoting (`-H 'Cookie:
//! canary=always'`). We accept the quoting — single quotes, double quotes, backslash escapes — and
//! refuse everything that would make `sh` do more than run one program: separators, pipes,
//! redirections, substitutions, sub-shells, comments and newlines. Refusing (rather than treating
//! them literally) matters: a user who wrote `$TARGET` expects expansion we will not do.

use super::spec::SpecError;

/// Characters that make `sh` do something other than pass a word to the program.
const META: &[char] = &[';', '|', '&', '$', '`', '<', '>', '(', ')', '\n', '\r'];

/// Splits `cmd` into words, or names the first construct that is not plain words.
pub(crate) fn split(cmd: &str) -> Result<Vec<String>, SpecError> {
    let mut words = Vec::new();
    let mut word = String::new();
    // Distinguishes an empty quoted word (`''`) from no word at all.
    let mut in_word = false;
    let mut chars = cmd.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(q) => word.push(q),
                        None => return Err(SpecError::new("cmd has an unterminated ' quote")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        // Inside double quotes sh still expands these; we never expand.
                        Some(q @ ('$' | '`')) => {
                            return Err(SpecError::new(format!(
                                "cmd uses shell expansion ({q}), which is never run; write the value literally"
                            )))
                        }
                        Some('\\') => match chars.next() {
                            Some(e @ ('"' | '\\')) => word.push(e),
                            Some(other) => {
                                word.push('\\');
                                word.push(other);
                            }
                            None => return Err(SpecError::new("cmd has an unterminated \" quote")),
                        },
                        Some(q) => word.push(q),
                        None => return Err(SpecError::new("cmd has an unterminated \" quote")),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') | None => {
                    return Err(SpecError::new("cmd ends with a dangling backslash"));
                }
                Some(e) => {
                    in_word = true;
                    word.push(e);
                }
            },
            '#' if !in_word => {
                return Err(SpecError::new(
                    "cmd contains a shell comment (#); only a hey invocation is understood",
                ))
            }
            c if META.contains(&c) => return Err(meta_error(c)),
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

fn meta_error(c: char) -> SpecError {
    let shown = match c {
        '\n' | '\r' => "a newline".to_string(),
        c => format!("'{c}'"),
    };
    SpecError::new(format!(
        "cmd contains the shell metacharacter {shown}; it is parsed as one hey invocation and never run by a shell"
    ))
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn splits_words_and_honours_quotes() {
        let words = split(r#"hey -H 'Cookie: canary=always' -d "{\"a\": 1}"  http://x/"#).unwrap();
        assert_eq!(
            words,
            vec![
                "hey",
                "-H",
                "Cookie: canary=always",
                "-d",
                r#"{"a": 1}"#,
                "http://x/"
            ]
        );
        assert_eq!(split("hey ''").unwrap(), vec!["hey", ""]);
        assert_eq!(split(r"a\ b").unwrap(), vec!["a b"]);
    }

    #[test]
    fn quoted_metacharacters_are_plain_text() {
        assert_eq!(
            split("hey -d 'a;b|c&d$e'").unwrap(),
            vec!["hey", "-d", "a;b|c&d$e"]
        );
    }

    #[test]
    fn refuses_shell_constructs() {
        for cmd in [
            "hey -z 1m http://x/; rm -rf /",
            "hey http://x/ | cat",
            "hey http://x/ && true",
            "hey http://x/ > out",
            "hey $(cat url)",
            "hey `cat url`",
            "hey http://$HOST/",
            "hey \"http://$HOST/\"",
            "(hey http://x/)",
            "hey http://x/\nrm -rf /",
            "hey http://x/ # comment",
            "hey 'unterminated",
            "hey \"unterminated",
        ] {
            let err = split(cmd).expect_err(cmd);
            assert!(!err.to_string().contains('\n'), "{err}");
        }
    }
}
