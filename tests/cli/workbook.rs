//! Recipients kept in a spreadsheet workbook, as the clerks keep them.
//!
//! The workbooks in tests/fixtures were saved by LibreOffice Calc and are committed, so these
//! tests need no spreadsheet program. Their sources are the flat-XML files beside them
//! (`kommuner.fods`, `kommuner-rettet.fods`), which fix every cell's type: text with a leading
//! zero, whole and decimal numbers, dates, æøå, an empty row in the middle, a coloured empty cell
//! beyond the data, and three sheets. `sh tests/fixtures/make-workbooks` remakes the workbooks.

use std::path::{Path, PathBuf};

use crate::harness::{Campaign, Mail};

/// A template that shows the cells whose types matter.
const TEMPLATE: &str = "{{ navn }}\n\nKode {{ kommunekode }}, svarfrist {{ svarfrist }}, andel {{ andel }}.\n\nAkt-id {{ stamp.akt_id }}\n";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The shipped campaign reading `fixture` (copied to recipients/kommuner.<ending>), with the
/// Akt-id taken from the sheet's number column.
fn workbook_campaign(fixture: &str) -> Campaign {
    let c = Campaign::shipped();
    let ending = fixture.rsplit('.').next().unwrap();
    std::fs::copy(
        fixtures().join(fixture),
        c.path(&format!("recipients/kommuner.{ending}")),
    )
    .unwrap();
    c.edit(
        "config.toml",
        "file = \"recipients/kommuner.csv\"",
        &format!("file = \"recipients/kommuner.{ending}\""),
    );
    c.edit(
        "config.toml",
        "akt_id_first = \"1286555\"",
        "akt_id_column = \"akt_id\"",
    );
    c.write("templates/rundbrev.md", TEMPLATE);
    c
}

/// The plain text of each letter in the outbox, by file name.
fn outbox_texts(c: &Campaign) -> Vec<(String, String)> {
    c.files("outbox")
        .into_iter()
        .map(|f| {
            let text = Mail::from_file(&c.path(&format!("outbox/{f}"))).text();
            (f, text)
        })
        .collect()
}

#[test]
fn xlsx_ods_and_xls_give_the_letters_the_clerk_sees_in_the_sheet() {
    let mut sent = Vec::new();
    for (fixture, kind) in [
        ("kommuner.xlsx", "an Excel workbook"),
        ("kommuner.ods", "an OpenDocument spreadsheet"),
        ("kommuner.xls", "an Excel 97-2003 workbook"),
    ] {
        let c = workbook_campaign(fixture);
        let check = c.run(&["check"]).expect(0);
        check.stdout_has("All 3 letters are ready");
        check.stdout_has(&format!("({kind}, sheet \"Kommuner\")"));
        c.run(&["send"]).expect(0);

        let texts = outbox_texts(&c);
        let names: Vec<&str> = texts.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            names,
            [
                "1286555_0101_Koebenhavns-Kommune.eml",
                "1286556_147_Frederiksberg-Kommune.eml",
                "1286557_492_Aeroe-Kommune.eml",
            ],
            "{fixture}"
        );
        // Text 0101 keeps its zero, whole numbers have no ".0", dates are ISO dates, decimals
        // have a comma, and the empty row 4 is skipped.
        for (i, expected) in [
            "Københavns Kommune\n\nKode 0101, svarfrist 2020-08-31, andel 0,25.\n\nAkt-id 1286555",
            "Frederiksberg Kommune\n\nKode 147, svarfrist 2020-09-01, andel 3,5.\n\nAkt-id 1286556",
            "Ærø Kommune\n\nKode 492, svarfrist 2020-09-02, andel 1.\n\nAkt-id 1286557",
        ]
        .iter()
        .enumerate()
        {
            assert!(
                texts[i].1.starts_with(expected),
                "{fixture}, {}:\n{}",
                texts[i].0,
                texts[i].1
            );
        }
        sent.push((fixture, texts));
    }
    // The same sheet saved in three formats makes the same letters.
    assert_eq!(sent[0].1, sent[1].1, "xlsx and ods differ");
    assert_eq!(sent[0].1, sent[2].1, "xlsx and xls differ");
}

#[test]
fn recipients_sheet_picks_another_sheet_and_a_wrong_name_lists_the_sheets() {
    let c = workbook_campaign("kommuner.xlsx");
    c.edit(
        "config.toml",
        "name = \"navn\"",
        "name = \"navn\"\nsheet = \"Udvalg\"",
    );
    c.run(&["check"])
        .expect(0)
        .stdout_has("All 2 letters are ready")
        .stdout_has("sheet \"Udvalg\"");
    c.run(&["send"]).expect(0);
    let states = c.states();
    assert_eq!(
        states.keys().collect::<Vec<_>>(),
        ["0607", "0657"],
        "{states:?}"
    );

    c.edit(
        "config.toml",
        "sheet = \"Udvalg\"",
        "sheet = \"Kommunerne\"",
    );
    c.run(&["check"]).expect(2).stderr_has(
        "recipients/kommuner.xlsx: the workbook has no sheet \"Kommunerne\" (set by recipients.sheet); its sheets are: \"Kommuner\", \"Udvalg\", \"Fejl\"",
    );

    // A CSV file saved under a workbook's name, and a sheet named for a CSV file, are refused.
    c.write(
        "recipients/kommuner.xlsx",
        "kommunekode,navn,email
101,K,post@kk.dk
",
    );
    c.run(&["check"])
        .expect(2)
        .stderr_has("recipients/kommuner.xlsx: cannot read the workbook:");
    c.edit(
        "config.toml",
        "file = \"recipients/kommuner.xlsx\"",
        "file = \"recipients/kommuner.csv\"",
    );
    c.run(&["check"]).expect(2).stderr_has(
        "recipients/kommuner.csv: recipients.sheet is set to \"Kommunerne\", but this is a CSV file, which has no sheets",
    );
}

#[test]
fn every_problem_names_the_workbook_the_sheet_and_the_cell() {
    let c = workbook_campaign("kommuner.xlsx");
    c.edit(
        "config.toml",
        "name = \"navn\"",
        "name = \"navn\"\nsheet = \"Fejl\"",
    );
    let run = c.run(&["check"]).expect(2);
    run.stderr_has("found 2 problems");
    run.stderr_has("recipients/kommuner.xlsx, sheet \"Fejl\", cell C3: \"post(at)frederiksberg.dk\" is not a valid e-mail address");
    // Row 4 is empty, so the row after it is row 5, as the spreadsheet shows it.
    run.stderr_has("recipients/kommuner.xlsx, sheet \"Fejl\", cell C5: POST@kk.dk appears twice (also on row 2); that recipient would get two letters");

    c.edit("config.toml", "sheet = \"Fejl\"", "");
    c.edit("config.toml", "email = \"email\"", "email = \"e-mail\"");
    c.run(&["check"]).expect(2).stderr_has(
        "recipients/kommuner.xlsx, sheet \"Kommuner\", row 1: the required column \"e-mail\" (the e-mail address, set by recipients.email) is missing; the header has: kommunekode, navn, email, akt_id, svarfrist, andel",
    );
}

#[test]
fn a_workbook_changed_after_letters_went_out_counts_as_a_change() {
    let c = workbook_campaign("kommuner.xlsx");
    c.run(&["send", "--limit", "2"]).expect(0);
    assert_eq!(c.files("outbox").len(), 2);

    // The clerk corrects Frederiksberg's address (cell C3) and saves the workbook.
    std::fs::copy(
        fixtures().join("kommuner-rettet.xlsx"),
        c.path("recipients/kommuner.xlsx"),
    )
    .unwrap();
    c.run(&["send"]).expect(2).stderr_has(
        "the recipients file has changed for recipients who were already sent a letter: 147 (row 3)",
    );
    assert_eq!(c.files("outbox").len(), 2, "nothing more was sent");

    // Saving the same data as CSV changes nothing: the rows are the same.
    std::fs::copy(
        fixtures().join("kommuner.xlsx"),
        c.path("recipients/kommuner.xlsx"),
    )
    .unwrap();
    c.write(
        "recipients/kommuner.csv",
        "kommunekode;navn;email;akt_id;svarfrist;andel\n\
         0101;Københavns Kommune;post@kk.dk;1286555;2020-08-31;0,25\n\
         147;Frederiksberg Kommune;post@frederiksberg.dk;1286556;2020-09-01;3,5\n\
         492;Ærø Kommune;post@aeroe.dk;1286557;2020-09-02;1\n",
    );
    c.edit(
        "config.toml",
        "file = \"recipients/kommuner.xlsx\"",
        "file = \"recipients/kommuner.csv\"",
    );
    c.run(&["send"]).expect(0);
    assert_eq!(c.files("outbox").len(), 3);
}
