//! CSV text (RFC 4180): comma separated, CRLF line ends, a field quoted only
//! when it holds a comma, a quote or a line break, so plain values stay readable.

/// Builds CSV text row by row.
#[derive(Default)]
pub struct Csv {
    pub out: String,
}

impl Csv {
    pub fn row<S: AsRef<str>>(&mut self, fields: &[S]) {
        for (index, field) in fields.iter().enumerate() {
            if index > 0 {
                self.out.push(',');
            }
            push_field(&mut self.out, field.as_ref());
        }
        self.out.push_str("\r\n");
    }
}

fn push_field(out: &mut String, field: &str) {
    if field.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&field.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(field);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn quotes_only_what_needs_it() {
        let mut csv = super::Csv::default();
        csv.row(&["a", "b,c", "say \"hi\"", ""]);
        assert_eq!(csv.out, "a,\"b,c\",\"say \"\"hi\"\"\",\r\n");
    }
}
