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
///
/// The words come from `shlex` (POSIX quoting rules). Before that, [`refuse_shell`] looks
/// for what a shell would act on; no maintained crate does that, since a splitter's job
/// is to read words, not to say where `sh` would have started a second command.
pub(crate) fn split(cmd: &str) -> Result<Vec<String>, SpecError> {
    refuse_shell(cmd)?;
    shlex::split(cmd).ok_or_else(|| SpecError::new("cmd has an unterminated quote"))
}

/// Refuses unquoted metacharacters, expansions inside double quotes, comments and a
/// trailing backslash; quoted text is left to the splitter.
fn refuse_shell(cmd: &str) -> Result<(), SpecError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Quote {
        None,
        Single,
        Double,
    }
    let mut quote = Quote::None;
    // Whether the previous character ended a word (or the command just started).
    let mut at_word_start = true;
    let mut chars = cmd.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Quote::Single, '\'') | (Quote::Double, '"') => quote = Quote::None,
            (Quote::Single, _) => {}
            // Inside double quotes sh still expands these; we never expand.
            (Quote::Double, '$' | '`') => {
                return Err(SpecError::new(format!(
                    "cmd uses shell expansion ({c}), which is never run; write the value literally"
                )))
            }
            (Quote::Double, '\\') => {
                chars.next();
            }
            (Quote::Double, _) => {}
            (Quote::None, '\'') => quote = Quote::Single,
            (Quote::None, '"') => quote = Quote::Double,
            (Quote::None, '\\') => match chars.next() {
                None | Some('\n') => {
                    return Err(SpecError::new("cmd ends with a dangling backslash"))
                }
                Some(_) => {}
            },
            (Quote::None, '#') if at_word_start => {
                return Err(SpecError::new(
                    "cmd contains a shell comment (#); only a hey invocation is understood",
                ))
            }
            (Quote::None, c) if META.contains(&c) => return Err(meta_error(c)),
            (Quote::None, _) => {}
        }
        at_word_start = quote == Quote::None && matches!(c, ' ' | '\t');
    }
    if quote != Quote::None {
        return Err(SpecError::new(match quote {
            Quote::Single => "cmd has an unterminated ' quote",
            _ => "cmd has an unterminated \" quote",
        }));
    }
    Ok(())
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
        // A '#' inside a word is text, as in sh.
        assert_eq!(
            split("hey http://x/#top").unwrap(),
            vec!["hey", "http://x/#top"]
        );
        assert_eq!(
            split(r#"hey -H "A: \"q\"" x"#).unwrap(),
            vec!["hey", "-H", r#"A: "q""#, "x"]
        );
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
