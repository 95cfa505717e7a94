from mgbench.cli import main

raise SystemExit(main())
