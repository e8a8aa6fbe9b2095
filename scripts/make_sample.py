#!/usr/bin/env python3
"""Writes sample/cms: a local source laid out like openpaymentsdata.cms.gov.

SAMPLE DATA: every row is synthetic (names are "SAMPLE ..."); only the
91-column General Payments header is real (layouts/). Deterministic, so
re-running it reproduces the committed files byte for byte.

Usage: scripts/make_sample.py HEADER_CSV OUT_DIR
"""
import csv, io, json, os, random, sys

header_csv, out = sys.argv[1], sys.argv[2]
header = next(csv.reader(open(header_csv, newline="")))
assert len(header) == 91, len(header)

files = {
    2023: "openpayments/PGYR2023_P01302025_01212025/OP_DTL_GNRL_PGYR2023_P01302025_01212025.csv",
    2024: "openpayments/PGYR2024_P06302025_06162025/OP_DTL_GNRL_PGYR2024_P06302025_06162025.csv",
}
catalog = []
for year, rel in files.items():
    rng = random.Random(year)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for i in range(300):
        row = [""] * 91
        for j, col in enumerate(header):
            if col == "Change_Type":
                row[j] = "UNCHANGED"
            elif col == "Covered_Recipient_Type":
                row[j] = "Covered Recipient Physician"
            elif col == "Covered_Recipient_First_Name":
                row[j] = "SAMPLE"
            elif col == "Covered_Recipient_Last_Name":
                # quoted fields with commas, doubled quotes and newlines, as in the real files
                row[j] = rng.choice(["PERSON", 'O"NEIL', "SMITH, JR", "LINE\nBREAK"])
            elif col == "Program_Year":
                row[j] = str(year)
            elif col == "Total_Amount_of_Payment_USDollars":
                row[j] = f"{rng.uniform(1, 5000):.2f}"
            elif col == "Record_ID":
                row[j] = str(900000000 + year * 1000 + i)
            elif col == "Recipient_State":
                row[j] = rng.choice(["CA", "NY", "TX", "WA"])
            elif col == "Date_of_Payment":
                row[j] = f"{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}/{year}"
        w.writerow(row)
    path = os.path.join(out, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as f:
        f.write(buf.getvalue())
    catalog.append({
        "@type": "dcat:Dataset",
        "accessLevel": "public",
        "identifier": f"sample-general-{year}",
        "title": f"{year} General Payment Data",
        "description": "SAMPLE DATA for openpay's offline demo: synthetic rows under the real header.",
        "distribution": [{"@type": "dcat:Distribution", "downloadURL": f"https://download.cms.gov/{rel}", "mediaType": "text/csv"}],
    })
cat = os.path.join(out, "api/1/metastore/schemas/dataset/items")
os.makedirs(os.path.dirname(cat), exist_ok=True)
with open(cat, "w") as f:
    json.dump(catalog, f, indent=2)
    f.write("\n")
