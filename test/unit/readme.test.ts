import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { renderReadme } from "../../scripts/readmeSections.ts";
import { SETTING_NAMES } from "../../src/config/index.ts";

const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");

describe("README", () => {
  it("has the settings, rules and metrics sections as the code generates them (run npm run docs)", () => {
    expect(renderReadme(readme)).toBe(readme);
  });

  it("documents every setting", () => {
    for (const name of SETTING_NAMES) expect(readme).toContain(`\`${name}\``);
  });

  it("gives the two set-up commands", () => {
    expect(readme).toContain("npm ci\nnpm test");
  });
});
