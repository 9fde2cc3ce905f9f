//! Message catalogs: subjects, mail texts and flow messages in the reader's language.
//!
//! Catalogs are [Fluent](https://projectfluent.org) files (`locales/<tag>.ftl`), read
//! with `fluent-bundle`, the Project Fluent reference implementation in Rust. Fluent
//! was chosen over gettext `.po` because a translation carries its own plural and
//! grammatical variants (German needs the dative in "in 31 Minuten", French counts
//! 0 and 1 as singular) without the code knowing about them, and because the
//! maintained Rust gettext crates read only compiled `.mo` files.
//!
//! A locale is looked up along a chain: the exact tag (`de-AT`), its language (`de`),
//! then the default catalog ([`DEFAULT_LOCALE`]). A message missing from a catalog,
//! or failing to format there, is taken from the next one in the chain.

use std::sync::OnceLock;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource};
use unic_langid::LanguageIdentifier;

/// The catalog every other one falls back to, and which must hold every message.
pub const DEFAULT_LOCALE: &str = "en";

/// The shipped catalogs, tag → Fluent source. The first is the default.
pub const BUILTIN_CATALOGS: &[(&str, &str)] = &[
    ("en", include_str!("../locales/en.ftl")),
    ("de", include_str!("../locales/de.ftl")),
    ("fr", include_str!("../locales/fr.ftl")),
    ("es", include_str!("../locales/es.ftl")),
    ("it", include_str!("../locales/it.ftl")),
];

/// Why a catalog or a message failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// A catalog does not parse.
    #[error("catalog {locale}: {detail}")]
    Parse {
        /// The catalog's tag.
        locale: String,
        /// What the parser said.
        detail: String,
    },
    /// No catalog in the chain has the message (not even the default).
    #[error("message '{id}' is not in the default catalog ({DEFAULT_LOCALE})")]
    Missing {
        /// The message id.
        id: String,
    },
    /// The message exists but did not format in any catalog of the chain.
    #[error("message '{id}' did not format: {detail}")]
    Format {
        /// The message id.
        id: String,
        /// Fluent's complaint in the last catalog tried.
        detail: String,
    },
}

/// A set of catalogs, the default first.
pub struct Catalogs {
    bundles: Vec<(String, FluentBundle<FluentResource>)>,
}

impl std::fmt::Debug for Catalogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tags: Vec<&str> = self.bundles.iter().map(|(t, _)| t.as_str()).collect();
        f.debug_struct("Catalogs").field("locales", &tags).finish()
    }
}

/// The lookup order for one locale: indices into [`Catalogs`], at most three.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chain {
    items: [usize; 3],
    len: usize,
}

impl Chain {
    fn push(&mut self, i: usize) {
        if !self.items[..self.len].contains(&i) && self.len < 3 {
            self.items[self.len] = i;
            self.len += 1;
        }
    }
    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.items[..self.len].iter().copied()
    }
}

/// Lower-cased tag with `_` read as `-` (`de_AT`, as Django writes it, is `de-at`).
fn normalize(tag: &str) -> String {
    tag.trim().replace('_', "-").to_ascii_lowercase()
}

impl Catalogs {
    /// The shipped catalogs, parsed once.
    pub fn builtin() -> &'static Catalogs {
        static BUILTIN: OnceLock<Catalogs> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            Catalogs::from_sources(BUILTIN_CATALOGS)
                .expect("shipped catalogs parse (checked by a unit test)")
        })
    }

    /// Catalogs from `(tag, Fluent source)` pairs; the first is the default.
    pub fn from_sources(sources: &[(&str, &str)]) -> Result<Self, CatalogError> {
        let mut bundles = Vec::with_capacity(sources.len());
        for (tag, src) in sources {
            let parse_err = |detail: String| CatalogError::Parse {
                locale: (*tag).to_string(),
                detail,
            };
            let langid: LanguageIdentifier = tag.parse().map_err(|e| parse_err(format!("{e}")))?;
            let resource = FluentResource::try_new((*src).to_string())
                .map_err(|(_, errs)| parse_err(format!("{errs:?}")))?;
            let mut bundle = FluentBundle::new_concurrent(vec![langid]);
            // Mail is not a bidi UI: no isolation marks around placeables.
            bundle.set_use_isolating(false);
            bundle
                .add_resource(resource)
                .map_err(|errs| parse_err(format!("{errs:?}")))?;
            bundles.push((normalize(tag), bundle));
        }
        Ok(Catalogs { bundles })
    }

    /// Tags of the catalogs held, default first.
    pub fn locales(&self) -> impl Iterator<Item = &str> {
        self.bundles.iter().map(|(t, _)| t.as_str())
    }

    fn index(&self, tag: &str) -> Option<usize> {
        self.bundles.iter().position(|(t, _)| t == tag)
    }

    /// The lookup chain for `locale`: exact tag, its language, the default.
    pub fn chain(&self, locale: &str) -> Chain {
        let mut chain = Chain {
            items: [0; 3],
            len: 0,
        };
        let tag = normalize(locale);
        if let Some(i) = self.index(&tag) {
            chain.push(i);
        }
        if let Some(i) = tag.split('-').next().and_then(|lang| self.index(lang)) {
            chain.push(i);
        }
        chain.push(0);
        chain
    }

    /// The catalog `locale` resolves to (`fr-CH` → `fr`; unknown → the default).
    pub fn resolve(&self, locale: &str) -> &str {
        let first = self.chain(locale).items[0];
        &self.bundles[first].0
    }

    /// Message `id` formatted with `args`, from the first catalog of `locale`'s chain
    /// that has it and formats it without error.
    pub fn format(
        &self,
        locale: &str,
        id: &str,
        args: Option<&FluentArgs<'_>>,
    ) -> Result<String, CatalogError> {
        let mut last_error = None;
        for i in self.chain(locale).iter() {
            let bundle = &self.bundles[i].1;
            let Some(pattern) = bundle.get_message(id).and_then(|m| m.value()) else {
                continue;
            };
            let mut errors = Vec::new();
            let text = bundle.format_pattern(pattern, args, &mut errors);
            if errors.is_empty() {
                return Ok(text.into_owned());
            }
            last_error = Some(format!("{errors:?}"));
        }
        Err(match last_error {
            Some(detail) => CatalogError::Format {
                id: id.into(),
                detail,
            },
            None => CatalogError::Missing { id: id.into() },
        })
    }

    /// Like [`Catalogs::format`] for messages the stage itself always has: falls back
    /// to the id, so a broken catalog shows a key rather than failing a flow.
    pub fn text(&self, locale: &str, id: &str, args: Option<&FluentArgs<'_>>) -> String {
        self.format(locale, id, args).unwrap_or_else(|e| {
            tracing::error!(target: "email_stage", %e, "catalog message missing");
            id.to_string()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fluent_bundle::FluentValue;

    fn ids_of(src: &str) -> Vec<&str> {
        src.lines()
            .filter_map(|l| l.split_once(" =").map(|(id, _)| id))
            .filter(|id| !id.is_empty() && !id.starts_with([' ', '#']))
            .collect()
    }

    /// Sample arguments for every variable the catalogs use.
    fn sample_args() -> FluentArgs<'static> {
        let mut a = FluentArgs::new();
        for (k, v) in [
            ("brand", "Acme"),
            ("username", "jane"),
            ("expires", "soon"),
            ("url", "https://x/"),
            ("address", "help@acme.test"),
            ("date", "today"),
            ("amount", "3 minutes"),
            ("days", "2 days"),
            ("hours", "3 hours"),
            ("month", "May"),
            ("time", "10:00"),
        ] {
            a.set(k, FluentValue::from(v));
        }
        for k in ["minutes", "n", "day", "year"] {
            a.set(k, FluentValue::from(2));
        }
        a
    }

    #[test]
    fn every_catalog_parses_has_only_default_ids_and_formats_cleanly() {
        let cats = Catalogs::from_sources(BUILTIN_CATALOGS).unwrap();
        let default_ids = ids_of(BUILTIN_CATALOGS[0].1);
        assert!(default_ids.len() > 30, "{default_ids:?}");
        let args = sample_args();
        for (tag, src) in BUILTIN_CATALOGS {
            let ids = ids_of(src);
            for id in &ids {
                assert!(default_ids.contains(id), "{tag} has '{id}', en does not");
            }
            for id in &default_ids {
                assert!(ids.contains(id), "{tag} lacks '{id}'");
                let bundle = &cats.bundles[cats.index(tag).unwrap()].1;
                let p = bundle.get_message(id).unwrap().value().unwrap();
                let mut errors = Vec::new();
                let text = bundle.format_pattern(p, Some(&args), &mut errors);
                assert!(errors.is_empty(), "{tag} {id}: {errors:?}");
                assert!(!text.contains('{'), "{tag} {id}: {text}");
            }
        }
    }

    #[test]
    fn no_catalog_names_another_product() {
        for (tag, src) in BUILTIN_CATALOGS {
            let lower = src.to_lowercase();
            assert!(!lower.contains("authentik"), "{tag} names authentik");
        }
    }

    #[test]
    fn chain_falls_back_from_region_to_language_to_default() {
        let cats = Catalogs::builtin();
        assert_eq!(cats.resolve("de-AT"), "de");
        assert_eq!(cats.resolve("de_AT"), "de");
        assert_eq!(cats.resolve("FR-ch"), "fr");
        assert_eq!(cats.resolve("xx"), "en");
        assert_eq!(cats.resolve(""), "en");
        assert_eq!(
            cats.text("de-AT", "msg-sent", None),
            "E-Mail erfolgreich gesendet."
        );
        // A message only the default has is taken from it.
        let partial =
            Catalogs::from_sources(&[("en", "a = A\nb = B\n"), ("de", "a = Ä\n")]).unwrap();
        assert_eq!(partial.text("de", "a", None), "Ä");
        assert_eq!(partial.text("de", "b", None), "B");
        assert_eq!(
            partial.format("de", "c", None),
            Err(CatalogError::Missing { id: "c".into() })
        );
    }

    #[test]
    fn plurals_follow_the_language() {
        let cats = Catalogs::builtin();
        let n = |n: i64| {
            let mut a = FluentArgs::new();
            a.set("n", n);
            a
        };
        assert_eq!(cats.text("en", "time-minutes", Some(&n(1))), "a minute");
        assert_eq!(cats.text("en", "time-minutes", Some(&n(31))), "31 minutes");
        assert_eq!(cats.text("de", "time-days", Some(&n(2))), "2 Tagen");
        assert_eq!(cats.text("fr", "time-hours", Some(&n(1))), "une heure");
    }
}
