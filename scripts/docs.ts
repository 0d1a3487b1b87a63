/** `npm run docs`: regenerates the README's settings, rules and metrics sections from the code. */
import { readFileSync, writeFileSync } from "node:fs";
import { renderReadme } from "./readmeSections.ts";

const path = new URL("../README.md", import.meta.url);
writeFileSync(path, renderReadme(readFileSync(path, "utf8")));
console.log("README.md sections regenerated");
