//! Function reference generated from each function's `documentation()`:
//! the CLI listing (`sceneql functions`) and `docs/functions.md` both come
//! from here, so docs cannot drift from the code. The doc sections the
//! function families share are in [`crate::sections`].
//! `docs/functions.md` is committed; a unit test fails when it differs
//! from [`markdown()`], and `SCENEQL_BLESS=1 cargo test -p sceneql-udfs`
//! rewrites it.

use datafusion::logical_expr::{DocSection, Documentation};

use crate::register::{aggregate_udfs, scalar_udfs};

/// One documented function.
#[derive(Debug, Clone)]
pub struct FunctionDoc {
    /// SQL name.
    pub name: String,
    /// "scalar" or "aggregate".
    pub kind: &'static str,
    /// Its documentation (None only if a function forgot to provide it).
    pub doc: Option<Documentation>,
}

/// Every registered function with its documentation, in registration order.
pub fn functions() -> Vec<FunctionDoc> {
    let scalars = scalar_udfs().into_iter().map(|f| FunctionDoc {
        name: f.name().to_string(),
        kind: "scalar",
        doc: f.documentation().cloned(),
    });
    let aggregates = aggregate_udfs().into_iter().map(|f| FunctionDoc {
        name: f.name().to_string(),
        kind: "aggregate",
        doc: f.documentation().cloned(),
    });
    scalars.chain(aggregates).collect()
}

/// Short listing for the CLI: (syntax, one-line description), in
/// registration order. The syntax is the documented call, e.g.
/// `ndvi(nir, red)`; the description is its first sentence.
pub fn listing() -> Vec<(String, String)> {
    functions()
        .into_iter()
        .map(|f| match f.doc {
            Some(doc) => (doc.syntax_example.clone(), first_sentence(&doc.description)),
            None => (f.name.clone(), "(undocumented)".to_string()),
        })
        .collect()
}

/// First sentence (up to the first ". " or line break) of a description.
fn first_sentence(text: &str) -> String {
    let line = text.trim().lines().next().unwrap_or_default();
    // A full stop ends the sentence, unless it ends an abbreviation.
    let ends = line.match_indices(". ").map(|(i, _)| i).find(|&i| {
        let word = line[..i].rsplit([' ', '(']).next().unwrap_or_default();
        !matches!(word, "e.g" | "i.e" | "etc" | "cf" | "vs" | "approx")
    });
    match ends {
        Some(i) => line[..=i].to_string(),
        None => line.to_string(),
    }
}

/// The whole function reference as markdown (the content of
/// `docs/functions.md`): sections in a fixed order, then functions in
/// registration order.
pub fn markdown() -> String {
    markdown_of(&functions())
}

/// The reference for a given list of functions (e.g. a subset for a CLI
/// page), in the same format as [`markdown()`].
pub fn markdown_of(functions: &[FunctionDoc]) -> String {
    // Sections in order of first appearance, each with the first description
    // any of its functions gives.
    let mut sections: Vec<DocSection> = Vec::new();
    for f in functions {
        let section = f
            .doc
            .as_ref()
            .map(|d| d.doc_section.clone())
            .unwrap_or_default();
        match sections.iter_mut().find(|s| s.label == section.label) {
            Some(s) => s.description = s.description.or(section.description),
            None => sections.push(section),
        }
    }
    let mut out = String::new();
    out.push_str(
        "<!-- Generated from each function's documentation() by udfs/src/docs.rs.\n     \
         Do not edit: regenerate with `SCENEQL_BLESS=1 cargo test -p sceneql-udfs`. -->\n\n",
    );
    out.push_str("# sceneql SQL functions\n\n");
    out.push_str(
        "These functions are registered on every sceneql session (local and Ballista) in addition \
         to DataFusion's built-in functions. `sceneql functions` prints the short list.\n\n",
    );
    for section in &sections {
        let names: Vec<String> = functions
            .iter()
            .filter(|f| section_label(f) == section.label)
            .map(|f| format!("[{0}](#{0})", f.name))
            .collect();
        out.push_str(&format!("- **{}**: {}\n", section.label, names.join(", ")));
    }
    for section in &sections {
        out.push_str(&format!("\n## {}\n\n", section.label));
        if let Some(description) = section.description {
            out.push_str(description);
            out.push_str("\n\n");
        }
        for f in functions
            .iter()
            .filter(|f| section_label(f) == section.label)
        {
            out.push_str(&function_markdown(f));
        }
    }
    out
}

fn section_label(f: &FunctionDoc) -> &'static str {
    f.doc
        .as_ref()
        .map(|d| d.doc_section.label)
        .unwrap_or(DocSection::default().label)
}

fn function_markdown(f: &FunctionDoc) -> String {
    let mut out = format!("### {}\n\n", f.name);
    let Some(doc) = &f.doc else {
        out.push_str("(undocumented)\n\n");
        return out;
    };
    out.push_str(&format!("*{} function*\n\n", f.kind));
    out.push_str(doc.description.trim());
    out.push_str("\n\n");
    out.push_str(&format!("```sql\n{}\n```\n\n", doc.syntax_example.trim()));
    if let Some(alternatives) = &doc.alternative_syntax {
        out.push_str("Also: ");
        let alts: Vec<String> = alternatives.iter().map(|a| format!("`{a}`")).collect();
        out.push_str(&alts.join(", "));
        out.push_str("\n\n");
    }
    if let Some(arguments) = &doc.arguments {
        out.push_str("#### Arguments\n\n");
        for (name, description) in arguments {
            out.push_str(&format!("- **{name}**: {description}\n"));
        }
        out.push('\n');
    }
    if let Some(example) = &doc.sql_example {
        out.push_str("#### Example\n\n");
        out.push_str(&format!("```sql\n{}\n```\n\n", example.trim()));
    }
    if let Some(related) = &doc.related_udfs {
        let links: Vec<String> = related.iter().map(|r| format!("[{r}](#{r})")).collect();
        out.push_str(&format!("Related: {}\n\n", links.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// `docs/functions.md` of the checkout being tested: cargo sets the
    /// manifest directory when it runs the test too, which also holds when a
    /// shared build cache has the test built from another checkout's path.
    fn functions_md() -> std::path::PathBuf {
        let dir = std::env::var_os("CARGO_MANIFEST_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
        dir.join("../docs/functions.md")
    }

    #[test]
    fn every_registered_function_is_documented_once() {
        let functions = functions();
        let mut seen = HashSet::new();
        for f in &functions {
            assert!(
                seen.insert(f.name.clone()),
                "{} is registered twice",
                f.name
            );
            let doc = f
                .doc
                .as_ref()
                .unwrap_or_else(|| panic!("{} has no documentation()", f.name));
            assert!(
                !doc.description.trim().is_empty(),
                "{}: empty description",
                f.name
            );
            assert!(
                doc.syntax_example.starts_with(&format!("{}(", f.name)),
                "{}: syntax example should show the call, got {:?}",
                f.name,
                doc.syntax_example
            );
            assert!(doc.sql_example.is_some(), "{}: no SQL example", f.name);
        }
        assert_eq!(listing().len(), functions.len());
    }

    #[test]
    fn first_sentence_cuts_at_the_first_period() {
        assert_eq!(first_sentence("Does X. Then Y."), "Does X.");
        assert_eq!(first_sentence("Uses 0.5 as L"), "Uses 0.5 as L");
        assert_eq!(first_sentence("One line\nsecond"), "One line");
        // Abbreviations do not end it.
        assert_eq!(
            first_sentence("Burn ratio, e.g. for fires (i.e. NBR). More."),
            "Burn ratio, e.g. for fires (i.e. NBR)."
        );
    }

    #[test]
    fn committed_functions_md_is_up_to_date() {
        let generated = markdown();
        if std::env::var_os("SCENEQL_BLESS").is_some() {
            std::fs::write(functions_md(), &generated).expect("write docs/functions.md");
            return;
        }
        let committed = std::fs::read_to_string(functions_md())
            .unwrap_or_else(|e| panic!("read {}: {e}", functions_md().display()));
        assert!(
            committed == generated,
            "docs/functions.md is out of date with the functions' documentation(); regenerate it with \
             `SCENEQL_BLESS=1 cargo test -p sceneql-udfs docs::` and commit it"
        );
    }
}
