"""Real-browser tests: Debian's chromium at a phone's 360×740 viewport, through Playwright."""
