//! The verification link: `{base_url}/if/flow/{slug}/?{query without flow_token}&flow_token={key}`.

/// Builds the link for `key` from the host's public base URL (never a request
/// header), the flow slug and the executor's `query` parameter.
pub fn build(base_url: &str, flow_slug: &str, query: &str, key: Option<&str>) -> String {
    let mut out = format!("{}/if/flow/{}/", base_url.trim_end_matches('/'), flow_slug);
    let mut ser = form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if k != "flow_token" {
            ser.append_pair(&k, &v);
            any = true;
        }
    }
    if let Some(key) = key {
        ser.append_pair("flow_token", key);
        any = true;
    }
    if any {
        out.push('?');
        out.push_str(&ser.finish());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::build;

    #[test]
    fn spec_examples() {
        let b = "http://testserver";
        assert_eq!(build(b, "s", "", None), "http://testserver/if/flow/s/");
        assert_eq!(
            build(b, "s", "", Some("T")),
            "http://testserver/if/flow/s/?flow_token=T"
        );
        assert_eq!(
            build(b, "s", "foo=bar", Some("T")),
            "http://testserver/if/flow/s/?foo=bar&flow_token=T"
        );
        assert_eq!(
            build(b, "s", "flow_token=old&a=1", Some("T")),
            "http://testserver/if/flow/s/?a=1&flow_token=T"
        );
    }

    #[test]
    fn form_encoding_and_repeats() {
        assert_eq!(
            build(
                "https://id.example/",
                "s",
                "next=%2Fapp%3Fx%3D1&a=1&a=2&sp=a+b",
                Some("T")
            ),
            "https://id.example/if/flow/s/?next=%2Fapp%3Fx%3D1&a=1&a=2&sp=a+b&flow_token=T"
        );
    }
}
