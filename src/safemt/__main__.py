from safemt.cli import main

raise SystemExit(main())
