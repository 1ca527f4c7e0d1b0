"""Run a batch of exposure-time calculations through etckit's scripting API; write a CSV table.

    python examples/batch.py --url https://etc.example.org --token etk_... --out snr.csv \
        --filters F115W,F150W,F200W --groups 3,6,10

(--token may also come from the ETCKIT_TOKEN environment variable; make a token of scope
`write` on the API tokens page, /tokens.) The script makes one workbook with a point source
of the given flux and one scene, then one calculation per filter and number of groups, and
writes one row per calculation: its settings, its status, the signal-to-noise and the times.
The workbook stays, so the results can be looked at in the browser afterwards.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from itertools import product

from etckit.client import Client, EtckitError

COLUMNS = ("filter", "groups", "readout_pattern", "integrations", "exposures", "status", "snr",
           "total_exposure_time_s", "measurement_time_s", "extracted_source_rate_e_s",
           "background_rate_e_s", "error")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="main_server's URL")
    parser.add_argument("--token", default=os.environ.get("ETCKIT_TOKEN", ""),
                        help="API token (default: $ETCKIT_TOKEN)")
    parser.add_argument("--out", default="batch.csv", help="CSV file to write")
    parser.add_argument("--filters", default="F115W,F150W,F200W",
                        help="comma-separated NIRCam short-wavelength filters")
    parser.add_argument("--groups", default="3,6,10",
                        help="comma-separated group counts (MEDIUM8 allows up to 10)")
    parser.add_argument("--flux-njy", type=float, default=100.0, help="source flux, nJy")
    parser.add_argument("--workbook", default="Batch", help="name of the workbook made")
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("give --token or set ETCKIT_TOKEN")
    return args


def row(data: dict, calc: dict) -> dict:
    result = calc.get("result") or {}
    out = {key: data[key] for key in COLUMNS[:5]}
    out.update({key: result.get(key, "") for key in COLUMNS[6:11]})
    out["status"] = calc["status"]
    out["error"] = calc.get("error") or ""
    return out


def run(args: argparse.Namespace) -> int:
    with Client(args.url, args.token) as etc:
        book = etc.create_workbook(args.workbook, "made by examples/batch.py")["id"]
        defaults = etc.defaults(book)
        source = {**defaults["source"], "normalization": {
            **defaults["source"]["normalization"], "value": args.flux_njy}}
        source_id = etc.add_source(book, "Point source", source)["id"]
        scene_id = etc.add_scene(book, "Field", [source_id])["id"]
        rows = []
        for filter_, groups in product(args.filters.split(","), args.groups.split(",")):
            data = {**defaults["calculation"], "filter": filter_.strip(),
                    "groups": int(groups)}
            try:
                calc = etc.add_calculation(book, f"{filter_} {groups} groups", scene_id, data)
            except EtckitError as exc:  # settings the engine refuses: a row that says why
                if exc.code not in ("invalid", "too_expensive"):
                    raise
                rows.append(row(data, {"status": "refused", "error": str(exc)}))
                continue
            rows.append(row(data, etc.wait_result(book, calc["id"])))
    with open(args.out, "w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} calculations in workbook {book}; table written to {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return run(args)
    except EtckitError as exc:
        print(f"etckit refused: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
