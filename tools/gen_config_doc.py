"""Write docs/config.md from the config schema (pipeline/core/config.py).

    python -m tools.gen_config_doc
"""

from pathlib import Path

from moodwire.pipeline.core.config import schema_markdown

if __name__ == "__main__":
    target = Path(__file__).resolve().parents[1] / "docs" / "config.md"
    target.write_text(schema_markdown())
    print(f"wrote {target}")
