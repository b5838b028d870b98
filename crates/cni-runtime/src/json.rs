//! JSON output the way Go prints it: `json.MarshalIndent(v, "", "    ")` of compact bytes, keeping the
//! key order of the input (results come from cni-core in the spec's field order).

/// Re-indents compact JSON with `indent` per level, Go style (`"key": value`, empty `{}` and `[]`).
/// The input must be valid JSON (it comes from serde_json); whitespace outside strings is dropped.
pub fn indent(compact: &[u8], indent: &str) -> String {
    let text = String::from_utf8_lossy(compact);
    let bytes: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(compact.len() * 2);
    let mut depth = 0usize;
    let mut i = 0;
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str(indent);
        }
    };
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            '"' => {
                out.push(c);
                i += 1;
                while i < bytes.len() {
                    out.push(bytes[i]);
                    if bytes[i] == '\\' && i + 1 < bytes.len() {
                        out.push(bytes[i + 1]);
                        i += 1;
                    } else if bytes[i] == '"' {
                        break;
                    }
                    i += 1;
                }
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                let mut j = i + 1;
                while j < bytes.len() && bytes[j].is_whitespace() {
                    j += 1;
                }
                if bytes.get(j) == Some(&close) {
                    out.push(c);
                    out.push(close);
                    i = j;
                } else {
                    out.push(c);
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn matches_go_marshal_indent() {
        let got = super::indent(
            br#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24","x":"a,b:{"}],"dns":{},"e":[]}"#,
            "    ",
        );
        let want = "{\n    \"cniVersion\": \"1.0.0\",\n    \"ips\": [\n        {\n            \"address\": \"10.0.0.2/24\",\n            \"x\": \"a,b:{\"\n        }\n    ],\n    \"dns\": {},\n    \"e\": []\n}";
        assert_eq!(got, want);
        assert_eq!(super::indent(br#""a\"b""#, "  "), r#""a\"b""#);
    }
}
