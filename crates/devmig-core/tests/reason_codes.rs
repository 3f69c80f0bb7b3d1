//! The README's reason-code table is the protocol's: every code the code can give is listed.
use devmig_core::ReasonCode;

#[test]
fn every_reason_code_is_in_the_readme_table() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
    let readme = std::fs::read_to_string(path).expect("README.md");
    for code in ReasonCode::ALL {
        assert!(readme.contains(&format!("| `{}` |", code.as_str())), "README lacks reason code {}", code.as_str());
        assert_eq!(ReasonCode::from_name(code.as_str()), Some(code));
    }
    assert_eq!(ReasonCode::from_name("i915.share"), None, "vendor rules are not protocol codes");
}
