/**
 * Debian's chromium, driven headless by puppeteer-core (which never downloads
 * a browser). scripts/chromium.sh installs it; when it is missing the browser
 * tests fail here, loudly.
 */
import { existsSync } from 'node:fs';
import puppeteer, { type Browser } from 'puppeteer-core';

export const CHROMIUM = process.env.CLOGS_TEST_CHROMIUM ?? '/usr/bin/chromium';

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`chromium is missing at ${CHROMIUM}: run scripts/chromium.sh ensure (apt-get install chromium)`);
  // --no-sandbox: the tests run as root, where chromium's sandbox refuses to start.
  return puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
}
