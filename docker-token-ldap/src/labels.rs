//! Labels from directory attributes (docker_auth's `labels` map) and from group searches.

use std::collections::{BTreeMap, HashMap};

use docker_token_core::{ConfigError, Labels};

use crate::config::{GroupSearch, LabelMapping};
use crate::escape::Dn;

/// Attribute values of one entry, keyed by attribute name as the server spelled it.
pub(crate) type Attrs = HashMap<String, Vec<String>>;

/// A validated label mapping.
#[derive(Debug, Clone)]
pub(crate) struct Mapping {
    attribute: String,
    parse_cn: bool,
    lower_case: bool,
    under: Option<Dn>,
}

/// The label mappings, validated once.
#[derive(Debug, Clone, Default)]
pub(crate) struct LabelMapper {
    mappings: BTreeMap<String, Mapping>,
}

fn values_of<'a>(attrs: &'a Attrs, name: &str) -> impl Iterator<Item = &'a String> {
    // attribute names are case-insensitive (memberOf vs memberof)
    attrs
        .iter()
        .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.iter())
}

fn transform(value: &str, parse_cn: bool, lower_case: bool, under: Option<&Dn>) -> Option<String> {
    let dn = if parse_cn || under.is_some() {
        Some(Dn::parse(value).ok()?)
    } else {
        None
    };
    if let (Some(dn), Some(base)) = (&dn, under)
        && !dn.is_within(base)
    {
        return None;
    }
    let out = match &dn {
        Some(dn) if parse_cn => dn.cn()?.to_owned(),
        _ => value.to_owned(),
    };
    Some(if lower_case { out.to_lowercase() } else { out })
}

fn add(labels: &mut Labels, name: &str, values: impl IntoIterator<Item = String>) {
    let slot = labels.entry(name.to_owned()).or_default();
    slot.extend(values);
    slot.sort();
    slot.dedup();
}

impl LabelMapper {
    /// Validates the `labels` section.
    pub(crate) fn new(config: &BTreeMap<String, LabelMapping>) -> Result<Self, ConfigError> {
        let mut mappings = BTreeMap::new();
        for (name, m) in config {
            let at = || format!("labels.{name}");
            if name.is_empty() {
                return Err(ConfigError::new("a label name must not be empty").at("labels"));
            }
            if m.attribute.trim().is_empty() {
                return Err(ConfigError::new("attribute must not be empty").at(at()));
            }
            let under = match &m.under {
                Some(u) => Some(
                    Dn::parse(u)
                        .map_err(|e| ConfigError::new(e.to_string()).at("under").at(at()))?,
                ),
                None => None,
            };
            mappings.insert(
                name.clone(),
                Mapping {
                    attribute: m.attribute.clone(),
                    parse_cn: m.parse_cn,
                    lower_case: m.lower_case,
                    under,
                },
            );
        }
        Ok(Self { mappings })
    }

    /// The attributes to request in the user search.
    pub(crate) fn attributes(&self) -> Vec<String> {
        let mut a: Vec<String> = self
            .mappings
            .values()
            .map(|m| m.attribute.clone())
            .collect();
        a.sort();
        a.dedup();
        a
    }

    /// Labels from the user's entry. Labels with no values are left out.
    pub(crate) fn labels(&self, attrs: &Attrs) -> Labels {
        let mut labels = Labels::new();
        for (name, m) in &self.mappings {
            let values: Vec<String> = values_of(attrs, &m.attribute)
                .filter_map(|v| transform(v, m.parse_cn, m.lower_case, m.under.as_ref()))
                .collect();
            if !values.is_empty() {
                add(&mut labels, name, values);
            }
        }
        labels
    }
}

/// Adds the values of a group search's `attribute` (from each group entry) to `labels`.
pub(crate) fn add_groups(labels: &mut Labels, search: &GroupSearch, groups: &[(String, Attrs)]) {
    let values: Vec<String> = groups
        .iter()
        .flat_map(|(dn, attrs)| {
            if search.attribute.eq_ignore_ascii_case("dn") {
                vec![dn.clone()]
            } else {
                values_of(attrs, &search.attribute).cloned().collect()
            }
        })
        .map(|v| {
            if search.lower_case {
                v.to_lowercase()
            } else {
                v
            }
        })
        .collect();
    if !values.is_empty() {
        add(labels, &search.label, values);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &[&str])]) -> Attrs {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.iter().map(|s| (*s).to_owned()).collect()))
            .collect()
    }

    fn mapper(json: &str) -> LabelMapper {
        LabelMapper::new(&serde_json::from_str(json).unwrap()).unwrap()
    }

    #[test]
    fn member_of_to_lowercase_cns() {
        let m = mapper(
            r#"{"group":{"attribute":"memberOf","parse_cn":true,"lower_case":true},
                           "mail":{"attribute":"mail"}}"#,
        );
        let a = attrs(&[
            (
                "memberof",
                &[
                    "CN=Dev,ou=groups,dc=example,dc=org",
                    r"cn=Doe\2C Fans,ou=groups,dc=example,dc=org",
                    "not a dn",
                    "ou=nocn,dc=x",
                ],
            ),
            ("mail", &["a@example.org"]),
        ]);
        let l = m.labels(&a);
        assert_eq!(l["group"], vec!["dev".to_owned(), "doe, fans".to_owned()]);
        assert_eq!(l["mail"], vec!["a@example.org".to_owned()]);
        assert_eq!(
            m.attributes(),
            vec!["mail".to_owned(), "memberOf".to_owned()]
        );
    }

    #[test]
    fn without_parse_cn_values_stay_whole_and_under_filters_subtrees() {
        let m = mapper(r#"{"g":{"attribute":"memberOf","under":"OU=Groups,DC=example,DC=org"}}"#);
        let a = attrs(&[(
            "memberOf",
            &[
                "cn=dev,ou=groups,dc=example,dc=org",
                "cn=dev,ou=other,dc=example,dc=org",
            ],
        )]);
        assert_eq!(
            m.labels(&a)["g"],
            vec!["cn=dev,ou=groups,dc=example,dc=org".to_owned()]
        );
        assert!(m.labels(&attrs(&[])).is_empty());
    }

    #[test]
    fn group_search_values_merge_and_dedup() {
        let m = mapper(r#"{"group":{"attribute":"memberOf","parse_cn":true}}"#);
        let mut l = m.labels(&attrs(&[("memberOf", &["cn=dev,ou=groups,dc=x"])]));
        let gs: GroupSearch =
            serde_json::from_str(r#"{"base":"dc=x","filter":"(member=${dn})","label":"group"}"#)
                .unwrap();
        add_groups(
            &mut l,
            &gs,
            &[
                (
                    "cn=dev,ou=posix,dc=x".to_owned(),
                    attrs(&[("cn", &["dev"])]),
                ),
                ("cn=ops,dc=x".to_owned(), attrs(&[("CN", &["ops"])])),
            ],
        );
        assert_eq!(l["group"], vec!["dev".to_owned(), "ops".to_owned()]);
    }

    #[test]
    fn rejects_bad_mappings() {
        assert!(
            LabelMapper::new(&serde_json::from_str(r#"{"g":{"attribute":""}}"#).unwrap()).is_err()
        );
        assert!(
            LabelMapper::new(
                &serde_json::from_str(r#"{"g":{"attribute":"x","under":"=bad"}}"#).unwrap()
            )
            .is_err()
        );
        assert!(
            serde_json::from_str::<BTreeMap<String, LabelMapping>>(
                r#"{"g":{"attribute":"x","typo":1}}"#
            )
            .is_err()
        );
    }
}
