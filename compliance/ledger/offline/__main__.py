import sys

from compliance.ledger.offline.report import main

sys.exit(main())
