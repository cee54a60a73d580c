#!/usr/bin/env python3
"""Make one benchmark campaign: N synthetic recipients, rundbrev's config and template, and the
same letter as a mailmerge (PyPI, awdeorio) template, database and server config.

    python3 bench/gen.py --repo /work/main --out DIR --n 10000 --port 25250 [--connections 8]

Writes into DIR (created; must be empty or absent):

    recipients.csv              kommunekode,navn,region,email (keys 000001.., names with æøå,
                                addresses post<i>@kommune<i>.dk: not reserved domains)
    config.toml                 the repo's config.toml with recipients.file pointing at the CSV and
                                [transport] kind = "smtp", [transport.smtp] on 127.0.0.1:PORT
    config-noconn.toml          the same without the `connections` key (for older binaries)
    templates/rundbrev.md       the shipped circular, unchanged
    mailmerge/mailmerge_template.txt   the same circular for mailmerge (Jinja2, text/markdown, so
                                mailmerge also sends plain text + HTML, multipart/alternative)
    mailmerge/mailmerge_database.csv   recipients.csv plus an akt_id column (rundbrev numbers the
                                Akt-id itself from stamps.akt_id_first; mailmerge has no such stamp)
    mailmerge/mailmerge_server.conf    host 127.0.0.1, the port, no security, ratelimit 0

Standard library only.
"""

import argparse
import datetime
import pathlib
import re
import shutil
import sys
import tomllib

# Real Danish place names with æ, ø and å, so the names exercise UTF-8 and RFC 2047 headers.
PLACES = [
    "Københavns", "Frederiksberg", "Ærø", "Læsø", "Fanø", "Ringkøbing-Skjern", "Køge", "Næstved",
    "Sorø", "Høje-Taastrup", "Hørsholm", "Rødovre", "Tårnby", "Dragør", "Gladsaxe", "Ballerup",
    "Brøndby", "Glostrup", "Helsingør", "Hillerød", "Allerød", "Furesø", "Rudersdal", "Egedal",
    "Frederikssund", "Halsnæs", "Gribskov", "Bornholms", "Greve", "Solrød", "Lejre", "Roskilde",
    "Holbæk", "Faxe", "Kalundborg", "Odsherred", "Slagelse", "Stevns", "Vordingborg", "Guldborgsund",
    "Lolland", "Middelfart", "Assens", "Faaborg-Midtfyn", "Kerteminde", "Nyborg", "Odense",
    "Svendborg", "Nordfyns", "Langeland", "Haderslev", "Billund", "Sønderborg", "Tønder", "Esbjerg",
    "Varde", "Vejen", "Aabenraa", "Fredericia", "Horsens", "Kolding", "Vejle", "Herning",
    "Holstebro", "Lemvig", "Struer", "Syddjurs", "Norddjurs", "Favrskov", "Odder", "Randers",
    "Silkeborg", "Samsø", "Skanderborg", "Aarhus", "Ikast-Brande", "Viborg", "Skive", "Thisted",
    "Morsø", "Rebild", "Mariagerfjord", "Jammerbugt", "Aalborg", "Hjørring", "Frederikshavn",
    "Vesthimmerlands", "Brønderslev", "Læsø Ø", "Christiansø",
]
REGIONS = [
    "Region Hovedstaden", "Region Sjælland", "Region Syddanmark", "Region Midtjylland",
    "Region Nordjylland",
]
MONTHS = [
    "januar", "februar", "marts", "april", "maj", "juni", "juli", "august", "september",
    "oktober", "november", "december",
]


def recipient(i):
    """The i-th synthetic recipient (1-based): key, name, region, address."""
    place = PLACES[i % len(PLACES)]
    return (
        f"{i:06d}",
        f"{place} Kommune nr. {i}",
        REGIONS[i % len(REGIONS)],
        f"post{i}@kommune{i}.dk",
    )


def csv_field(value):
    if any(c in value for c in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def set_key(text, section, key, value_toml):
    """Sets `key = value` in [section] of a TOML text, keeping comments (a line edit, not a
    re-serialisation, so the benchmark uses the shipped config as it is)."""
    lines = text.splitlines()
    start = next(
        (i for i, l in enumerate(lines) if l.strip() == f"[{section}]"), None
    )
    if start is None:
        raise SystemExit(f"gen.py: no [{section}] in config.toml")
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[")),
        len(lines),
    )
    pat = re.compile(rf"^\s*{re.escape(key)}\s*=")
    for i in range(start + 1, end):
        if pat.match(lines[i]):
            lines[i] = f"{key} = {value_toml}"
            break
    else:
        lines.insert(start + 1, f"{key} = {value_toml}")
    return "\n".join(lines) + "\n"


def danish_date(iso):
    d = datetime.date.fromisoformat(str(iso))
    return f"{d.day}. {MONTHS[d.month - 1]} {d.year}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repo", required=True, type=pathlib.Path)
    ap.add_argument("--out", required=True, type=pathlib.Path)
    ap.add_argument("--n", required=True, type=int)
    ap.add_argument("--port", required=True, type=int)
    ap.add_argument("--connections", type=int, default=8)
    a = ap.parse_args()

    out = a.out
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"gen.py: {out} is not empty")
    (out / "templates").mkdir(parents=True, exist_ok=True)
    (out / "mailmerge").mkdir(exist_ok=True)

    # --- rundbrev: the shipped template and config -----------------------------------------
    shutil.copy(a.repo / "templates" / "rundbrev.md", out / "templates" / "rundbrev.md")
    shipped = (a.repo / "config.toml").read_text(encoding="utf-8")
    cfg = tomllib.loads(shipped)
    text = set_key(shipped, "recipients", "file", '"recipients.csv"')
    text = set_key(text, "transport", "kind", '"smtp"')
    smtp = (
        "\n[transport.smtp]\n"
        'host = "127.0.0.1"\n'
        f"port = {a.port}\n"
        'security = "none"\n'
        "retries = 0\n"
    )
    (out / "config-noconn.toml").write_text(text + smtp, encoding="utf-8")
    (out / "config.toml").write_text(
        text + smtp + f"connections = {a.connections}\n", encoding="utf-8"
    )

    # --- recipients -------------------------------------------------------------------------
    akt_first = cfg["stamps"]["akt_id_first"]
    width = len(akt_first)
    with open(out / "recipients.csv", "w", encoding="utf-8", newline="") as r, open(
        out / "mailmerge" / "mailmerge_database.csv", "w", encoding="utf-8", newline=""
    ) as m:
        r.write("kommunekode,navn,region,email\n")
        m.write("kommunekode,navn,region,email,akt_id\n")
        for i in range(1, a.n + 1):
            row = ",".join(csv_field(v) for v in recipient(i))
            akt = str(int(akt_first) + i - 1).zfill(width)
            r.write(row + "\n")
            m.write(row + "," + akt + "\n")

    # --- mailmerge: the same letter ---------------------------------------------------------
    body = (a.repo / "templates" / "rundbrev.md").read_text(encoding="utf-8")
    # The leading {#- comment -#} would, in one Jinja file with the headers, also strip the blank
    # line that ends the headers: drop it (it renders to nothing in rundbrev too).
    body = re.sub(r"\A\{#.*?#\}\s*", "", body, flags=re.S)
    # The stamps rundbrev fills in itself: the letter date and Sags nr. are the campaign's
    # (literals here), the Akt-id comes from the database column.
    body = body.replace("{{ stamp.letter_date }}", danish_date(cfg["stamps"]["letter_date"]))
    body = body.replace("{{ stamp.sags_nr }}", str(cfg["stamps"]["sags_nr"]))
    body = body.replace("{{ stamp.akt_id }}", "{{ akt_id }}")
    if "stamp." in body:
        raise SystemExit("gen.py: the template uses a stamp this script does not translate")
    name = cfg["sender"]["from"]
    headers = [
        'TO: "{{ navn }}" <{{ email }}>',
        f"FROM: {name}",
    ]
    if cfg["sender"].get("reply_to"):
        headers.append(f"REPLY-TO: {cfg['sender']['reply_to']}")
    headers += [
        f"SUBJECT: {cfg['campaign']['subject']}",
        "CONTENT-TYPE: text/markdown",
    ]
    (out / "mailmerge" / "mailmerge_template.txt").write_text(
        "\n".join(headers) + "\n\n" + body, encoding="utf-8"
    )
    (out / "mailmerge" / "mailmerge_server.conf").write_text(
        "[smtp_server]\n"
        "host = 127.0.0.1\n"
        f"port = {a.port}\n"
        "ratelimit = 0\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    sys.exit(main())
