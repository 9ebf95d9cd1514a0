"""Write template.yaml's two generated blocks, the IAM statements of OrchestratorRole and
ApprovalRole, from orchestrator/cdk/permissions.py (the source the CDK construct builds its
statements from too). The rest of template.yaml is written by hand.

    python -m scripts.template            # rewrite the blocks (make template)
    python -m scripts.template --check    # exit 1 if template.yaml is not what it would write
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; 1 if stale")
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    args = parser.parse_args(argv)
    if str(ROOT) not in sys.path:  # this tree's orchestrator, not an installed copy
        sys.path.insert(0, str(ROOT))
    from orchestrator.cdk.permissions import SOURCE, generate

    text = args.template.read_text()
    generated = generate(text)
    if generated == text:
        print(f"{args.template.name}: the IAM statements are those of {SOURCE}")
        return 0
    if args.check:
        print(f"{args.template.name} is stale: run `make template`", file=sys.stderr)
        return 1
    args.template.write_text(generated)
    print(f"{args.template.name}: IAM statements written from {SOURCE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
