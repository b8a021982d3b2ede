import { chromium, type Browser } from 'playwright-core';

/** Debian's chromium (apt-get install chromium); playwright's own browser downloads are never used. */
export const CHROMIUM = process.env.HCGW_CHROMIUM ?? '/usr/bin/chromium';

/**
 * Headless Chromium without background traffic. Playwright gives every launch a fresh temporary profile
 * (--user-data-dir) and removes it on close; it refuses that flag in `args`, so it is not repeated here.
 */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30_000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
