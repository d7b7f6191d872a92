//! The specification of herald's compile errors: every file under `ui/fail` is a mistake a user can
//! make, with the exact diagnostic herald gives in the `.stderr` next to it; every file under
//! `ui/pass` must compile.
//!
//! Regenerate the snapshots with `TRYBUILD=overwrite cargo test -p herald-ui-tests`, then read
//! every changed `.stderr`: each error must point at the offending token and say what to write.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
