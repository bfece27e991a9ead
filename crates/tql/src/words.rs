//! A statement's words as the parser's own lexer reads them: comments
//! skipped, quotes honoured, each word where it starts in the text. For code
//! that must find its way in a statement without parsing it (where its
//! `LIMIT` or its closing `;` is; the words of an SQL statement that shares
//! TQL's lexical rules) instead of scanning the text with a lexer of its own.

use crate::lex::{tokenize, Tok};
use cromflag_model::StoreError;

/// One token of a statement, where it starts.
#[derive(Clone, Debug, PartialEq)]
pub struct Word {
    /// The byte offset of its first character in the statement's text.
    pub offset: usize,
    pub kind: WordKind,
}

/// What a [`Word`] is.
#[derive(Clone, Debug, PartialEq)]
pub enum WordKind {
    /// Unquoted: a keyword, a name or a function, as written.
    Bare(String),
    /// A double-quoted name, its doubled quotes made single.
    Quoted(String),
    /// A string literal or a number.
    Literal,
    /// Punctuation or an operator, as written: `;`, `(`, `<=`.
    Symbol(&'static str),
}

impl Word {
    /// Whether it is `keyword` unquoted, in any case.
    pub fn is_keyword(&self, keyword: &str) -> bool {
        matches!(&self.kind, WordKind::Bare(w) if w.eq_ignore_ascii_case(keyword))
    }
}

/// The words of `text` in order, or the lexer's error (an unterminated
/// quote or comment, a malformed number, a character TQL has no use for),
/// the same one `parse` would report for it.
pub fn words(text: &str) -> Result<Vec<Word>, StoreError> {
    let tokens = tokenize(text, &mut Vec::new())?;
    Ok(tokens
        .into_iter()
        .filter_map(|token| {
            let kind = match token.tok {
                Tok::Word(w) => WordKind::Bare(w),
                Tok::QuotedName(n) => WordKind::Quoted(n),
                Tok::Str(_) | Tok::Int(_) | Tok::Float(_) => WordKind::Literal,
                Tok::Punct(p) => WordKind::Symbol(p),
                Tok::End => return None,
            };
            Some(Word {
                offset: token.offset,
                kind,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_skip_comments_and_honour_quotes() {
        let text = "select /* LIMIT */ \"li\"\"mit\", 'limit;' -- limit\n LIMIT 5;";
        let found: Vec<(usize, WordKind)> = words(text)
            .unwrap()
            .into_iter()
            .map(|w| (w.offset, w.kind))
            .collect();
        assert_eq!(
            found,
            [
                (0, WordKind::Bare("select".into())),
                (19, WordKind::Quoted("li\"mit".into())),
                (28, WordKind::Symbol(",")),
                (30, WordKind::Literal),
                (49, WordKind::Bare("LIMIT".into())),
                (55, WordKind::Literal),
                (56, WordKind::Symbol(";")),
            ]
        );
        assert!(words(text).unwrap()[4].is_keyword("limit"));
        assert!(!words("\"limit\"").unwrap()[0].is_keyword("limit"));
        assert!(words("").unwrap().is_empty());
        assert!(words("a 'open").is_err());
    }
}
