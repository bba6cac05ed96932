//! Command templates: `{name}` placeholders filled in one pass, every value
//! single-quoted for `sh`.
//!
//! One pass, so that a value that itself contains `{out}` (a folder
//! someone named so) is never expanded again; quoted, so that a value with
//! spaces, `;` or `$(…)` stays one word and runs nothing.

/// `value` as one `sh` word: single-quoted, with `'` written `'\''`.
///
/// ```
/// use reproml_study::template::shell_quote;
/// assert_eq!(shell_quote("a b"), "'a b'");
/// assert_eq!(shell_quote("it's"), "'it'\\''s'");
/// ```
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

/// `template` with every `{name}` of `values` replaced by its quoted value;
/// other braces are left as they are.
///
/// ```
/// use reproml_study::template::fill;
/// let line = fill("cp {src}/x {out}", &[("src", "/a {out}"), ("out", "/b c")]);
/// assert_eq!(line, "cp '/a {out}'/x '/b c'");
/// ```
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let known = after.find('}').and_then(|close| {
            let name = &after[..close];
            values
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (close, *v))
        });
        match known {
            Some((close, value)) => {
                out.push_str(&shell_quote(value));
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn unknown_placeholders_and_lone_braces_stay() {
        assert_eq!(fill("a {x} {y} } {", &[("x", "1")]), "a '1' {y} } {");
    }

    #[test]
    fn hostile_values_stay_one_word() {
        let line = fill("echo {v}", &[("v", "x; rm -rf / $(id) `id` 'q'")]);
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&line)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim_end(),
            "x; rm -rf / $(id) `id` 'q'"
        );
    }

    proptest! {
        #[test]
        fn a_filled_value_is_never_expanded_again(v in "[a-z{}/ ]{0,20}") {
            let line = fill("{a}|{b}", &[("a", &v), ("b", "B")]);
            prop_assert_eq!(line, format!("{}|'B'", shell_quote(&v)));
        }
    }
}
