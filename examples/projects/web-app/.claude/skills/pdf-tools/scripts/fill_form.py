"""Fill an AcroForm PDF from a JSON file of field values."""

import json
import sys

from pypdf import PdfReader, PdfWriter


def main(form: str, values: str, out: str) -> None:
    """Write ``out``: ``form`` with the fields from the JSON file ``values`` filled in."""
    reader = PdfReader(form)
    writer = PdfWriter()
    writer.append(reader)
    with open(values, encoding="utf-8") as handle:
        data = json.load(handle)
    for page in writer.pages:
        writer.update_page_form_field_values(page, data)
    with open(out, "wb") as handle:
        writer.write(handle)


if __name__ == "__main__":
    main(*sys.argv[1:4])
