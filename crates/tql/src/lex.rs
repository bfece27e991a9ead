//! The TQL lexer: query text → tokens with their byte offsets.
//!
//! Also where comments are recognised, so [`blank_comments`] finds exactly
//! the comments the parser skips (quotes honoured the same way).

use crate::error;
use cromflag_model::StoreError;

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    /// An unquoted word: keyword, column or function name, as written.
    Word(String),
    QuotedName(String),
    Str(String),
    /// Unsigned: the sign is a separate token, and `9223372036854775808` is
    /// only valid after a `-`.
    Int(u64),
    Float(f64),
    /// Punctuation and operators, as written (`==` stays `==`).
    Punct(&'static str),
    End,
}

#[derive(Clone, Debug)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    /// Byte offset of the token's first character in the query text.
    pub(crate) offset: usize,
}

/// Two-character operators first, so `<=` is not read as `<` then `=`.
const PUNCTUATION: [&str; 19] = [
    "<=", ">=", "<>", "==", "!=", "||", "*", ",", "(", ")", ";", "=", "<", ">", "-", "+", "/", "%",
    ".",
];

/// `text` with each comment (`--` to the end of its line, `/* … */`) blanked
/// byte for byte, so that spans of `text` (`Statement::filter_span`, …) cut
/// the same pieces from it: a backend that glues pieces of a statement into
/// new ones must not let a line comment swallow what it appends. Comments
/// are found by the lexer, so quotes are honoured as the parser honours them.
pub fn blank_comments(text: &str) -> Result<String, StoreError> {
    let mut comments = Vec::new();
    tokenize(text, &mut comments)?;
    let mut bytes = text.as_bytes().to_vec();
    for comment in comments {
        bytes[comment].fill(b' ');
    }
    Ok(String::from_utf8(bytes).expect("whole characters replaced by spaces"))
}

/// The tokens of `text`; the byte ranges of its comments go to `comments`.
pub(crate) fn tokenize(
    text: &str,
    comments: &mut Vec<std::ops::Range<usize>>,
) -> Result<Vec<Token>, StoreError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    // `i` only ever advances over whole characters, so slicing at it is safe.
    while let Some(c) = text[i..].chars().next() {
        let start = i;
        let rest = &text[i..];
        let tok = if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        } else if rest.starts_with("--") {
            i = rest.find('\n').map_or(text.len(), |n| i + n);
            comments.push(start..i);
            continue;
        } else if let Some(body) = rest.strip_prefix("/*") {
            let end = body.find("*/").ok_or_else(|| {
                error(format_args!(
                    "unterminated /* comment starting at byte {start}"
                ))
            })?;
            i += 2 + end + 2;
            comments.push(start..i);
            continue;
        } else if c == '\'' {
            let (s, end) = quoted(text, i, '\'', "string literal")?;
            i = end;
            Tok::Str(s)
        } else if c == '"' {
            let (s, end) = quoted(text, i, '"', "quoted name")?;
            if s.is_empty() {
                return Err(error(format_args!("empty quoted name at byte {start}")));
            }
            i = end;
            Tok::QuotedName(s)
        } else if c.is_ascii_digit()
            || (c == '.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            let (tok, end) = number(text, i)?;
            i = end;
            tok
        } else if c.is_alphabetic() || c == '_' {
            let len = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            i += len;
            Tok::Word(rest[..len].to_string())
        } else if let Some(p) = PUNCTUATION.into_iter().find(|p| rest.starts_with(p)) {
            i += p.len();
            Tok::Punct(p)
        } else {
            return Err(error(format_args!(
                "syntax error at byte {start}: unexpected character {c:?}"
            )));
        };
        tokens.push(Token { tok, offset: start });
    }
    tokens.push(Token {
        tok: Tok::End,
        offset: text.len(),
    });
    Ok(tokens)
}

/// Reads a `quote`-delimited token starting at `start`, where a doubled quote
/// stands for one. Returns the unescaped text and the offset after the closing quote.
fn quoted(
    text: &str,
    start: usize,
    quote: char,
    what: &str,
) -> Result<(String, usize), StoreError> {
    let mut value = String::new();
    let mut i = start + 1;
    loop {
        let Some(n) = text[i..].find(quote) else {
            return Err(error(format_args!(
                "unterminated {what} starting at byte {start}"
            )));
        };
        value.push_str(&text[i..i + n]);
        i += n + 1;
        if text[i..].starts_with(quote) {
            value.push(quote);
            i += 1;
        } else {
            return Ok((value, i));
        }
    }
}

/// Reads `digits [. digits] [e [+-] digits]` (or `.digits …`) starting at `start`.
fn number(text: &str, start: usize) -> Result<(Tok, usize), StoreError> {
    let bytes = text.as_bytes();
    let digits = |mut i: usize| {
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let mut end = digits(start);
    let mut is_float = false;
    if bytes.get(end) == Some(&b'.') {
        is_float = true;
        end = digits(end + 1);
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let mut exp = end + 1;
        if matches!(bytes.get(exp), Some(b'+' | b'-')) {
            exp += 1;
        }
        let exp_end = digits(exp);
        if exp_end > exp {
            is_float = true;
            end = exp_end;
        }
    }
    let literal = &text[start..end];
    // `12abc` or `1e` is a typo, not the number 12 followed by a column.
    if text[end..]
        .chars()
        .next()
        .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
    {
        return Err(error(format_args!("malformed number at byte {start}")));
    }
    let tok = if is_float {
        match literal.parse::<f64>() {
            Ok(f) if f.is_finite() => Tok::Float(f),
            _ => return Err(error(format_args!("number {literal} is out of range"))),
        }
    } else {
        match literal.parse::<u64>() {
            Ok(n) => Tok::Int(n),
            Err(_) => return Err(error(format_args!("integer {literal} is out of range"))),
        }
    };
    Ok((tok, end))
}

/// How a syntax error names the token it found.
pub(crate) fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Word(w) => format!("'{w}'"),
        Tok::QuotedName(n) => format!("\"{n}\""),
        Tok::Str(s) => format!("string '{s}'"),
        Tok::Int(n) => format!("'{n}'"),
        Tok::Float(f) => format!("'{f}'"),
        Tok::Punct(p) => format!("'{p}'"),
        Tok::End => "end of query".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_are_blanked_in_place() {
        let text = "a = '--x' /* c */ and \"b--\" = 'it''s' -- end é";
        let blanked = blank_comments(text).unwrap();
        // `/* c */` is 7 bytes, `-- end é` 9 (é is two).
        let expected = format!(
            "a = '--x' {} and \"b--\" = 'it''s' {}",
            " ".repeat(7),
            " ".repeat(9)
        );
        assert_eq!(blanked, expected);
        assert_eq!(blanked.len(), text.len());
        assert!(blank_comments("a /* open").is_err());
    }
}
