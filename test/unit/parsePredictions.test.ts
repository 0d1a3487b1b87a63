import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import {
  type ParsedPredictionLine,
  type ParsePredictionsOptions,
  type PredictionsFormat,
  parsePredictions,
  parsePredictionValue,
} from "../../src/results/parsePredictions.ts";

async function* chunks(...parts: Array<string | Buffer>): AsyncGenerator<Buffer | string> {
  for (const part of parts) yield part;
}

async function collect(
  input: AsyncIterable<Buffer | string> | NodeJS.ReadableStream,
  options?: ParsePredictionsOptions,
): Promise<ParsedPredictionLine[]> {
  const out: ParsedPredictionLine[] = [];
  for await (const line of parsePredictions(input, options)) out.push(line);
  return out;
}

async function parseText(text: string, options?: ParsePredictionsOptions) {
  let format: PredictionsFormat | undefined;
  const lines = await collect(chunks(Buffer.from(text, "utf8")), {
    ...options,
    onFormat: (f) => {
      format = f;
    },
  });
  return { lines, format: format as PredictionsFormat };
}

/** The ok rows as [fileName, storeId (or MLflow's row index), prediction, line] tuples: easy to compare in full. */
function okRows(lines: readonly ParsedPredictionLine[]) {
  return lines
    .filter((l) => l.ok)
    .map((l) => [
      l.row.fileName,
      "storeId" in l.row ? l.row.storeId : l.row.rowIndex,
      l.row.prediction,
      l.line,
    ]);
}

function failures(lines: readonly ParsedPredictionLine[]) {
  return lines.filter((l) => !l.ok).map((l) => [l.line, l.reason, l.raw]);
}

describe("parsePredictions: shapes seen in the wild", () => {
  it("reads the guide's space-separated rows", async () => {
    const { lines, format } = await parseText(
      "test_data.json CA_1 2.33394885\ntest_data.json TX_1 0.97295016\n",
    );
    expect(format.delimiter).toBe(" ");
    expect(format.header).toBeUndefined();
    expect(okRows(lines)).toEqual([
      ["test_data.json", "CA_1", 2.33394885, 1],
      ["test_data.json", "TX_1", 0.97295016, 2],
    ]);
    expect(failures(lines)).toEqual([]);
  });

  it("treats runs of spaces as one separator and ignores leading/trailing whitespace", async () => {
    const { lines } = await parseText("  b-1.json   CA_1\t  2.5   \nb-1.json CA_2 -1e-3 \t\n");
    expect(okRows(lines)).toEqual([
      ["b-1.json", "CA_1", 2.5, 1],
      ["b-1.json", "CA_2", -0.001, 2],
    ]);
  });

  it("reads comma-separated rows, with padding around commas", async () => {
    const { lines, format } = await parseText("b-1.json,CA_1,2.5\nb-1.json, CA_2 , 3.5\n");
    expect(format.delimiter).toBe(",");
    expect(okRows(lines)).toEqual([
      ["b-1.json", "CA_1", 2.5, 1],
      ["b-1.json", "CA_2", 3.5, 2],
    ]);
  });

  it("prefers comma over space when both split a padded comma file evenly", async () => {
    const { lines, format } = await parseText("b-1.json, CA_1, 2.5\nb-1.json, CA_2, 3.5\n");
    expect(format.delimiter).toBe(",");
    expect(okRows(lines).map((r) => r[1])).toEqual(["CA_1", "CA_2"]);
  });

  it("reads tab-separated rows, store ids with spaces included", async () => {
    const { lines, format } = await parseText("b-1.json\tCA 1\t2.5\nb-1.json\tTX_1\t3\n");
    expect(format.delimiter).toBe("\t");
    expect(okRows(lines)).toEqual([
      ["b-1.json", "CA 1", 2.5, 1],
      ["b-1.json", "TX_1", 3, 2],
    ]);
  });

  it("recognises a header in any order and maps columns by name", async () => {
    const { lines, format } = await parseText(
      "prediction,store_id,file_name\n2.5,CA_1,b-1.json\n3.5,TX_1,b-1.json\n",
    );
    expect(format.header).toEqual(["prediction", "store_id", "file_name"]);
    expect(format.columns).toEqual({ prediction: 0, storeId: 1, fileName: 2 });
    expect(okRows(lines)).toEqual([
      ["b-1.json", "CA_1", 2.5, 2],
      ["b-1.json", "TX_1", 3.5, 3],
    ]);
    expect(failures(lines)).toEqual([]);
  });

  it("maps a header with extra columns and skips a header repeated mid-file", async () => {
    const text =
      "row file_name store_id prediction\n0 b-1.json CA_1 [1.5]\nrow file_name store_id prediction\n1 b-1.json CA_2 [2.5]\n";
    const { lines, format } = await parseText(text);
    expect(format.delimiter).toBe(" ");
    expect(okRows(lines)).toEqual([
      ["b-1.json", "CA_1", 1.5, 2],
      ["b-1.json", "CA_2", 2.5, 4],
    ]);
    expect(failures(lines)).toEqual([]);
  });

  it("reads MLflow's row,prediction,file_name output: rows identified by their position in the file", async () => {
    const { lines, format } = await parseText("row,prediction,file_name\n0,2.5,b-1.json\n1,[3.5],b-1.json\n");
    expect(format.columns).toEqual({ rowIndex: 0, prediction: 1, fileName: 2 });
    expect(okRows(lines)).toEqual([
      ["b-1.json", 0, 2.5, 2],
      ["b-1.json", 1, 3.5, 3],
    ]);
  });

  it("recognises headerless MLflow lines (row prediction file) and rejects a row that is not an index", async () => {
    const { lines, format } = await parseText("0 2.5 b-1.json\n1 3.5 b-1.json\nx 4.5 b-1.json\n");
    expect(format.columns).toEqual({ rowIndex: 0, prediction: 1, fileName: 2 });
    expect(okRows(lines)).toEqual([
      ["b-1.json", 0, 2.5, 1],
      ["b-1.json", 1, 3.5, 2],
    ]);
    expect(failures(lines)).toEqual([[3, expect.stringMatching(/not an index/), "x 4.5 b-1.json"]]);
  });

  it("reports a header with neither store_id nor row as unmatchable, line by line", async () => {
    const { lines, format } = await parseText("prediction,file_name\n2.5,b-1.json\n");
    expect(format.columns).toBeUndefined();
    expect(format.problem).toMatch(/no store_id \(or row\) column/);
    expect(failures(lines)).toEqual([[2, expect.stringMatching(/rows cannot be matched/), "2.5,b-1.json"]]);
  });

  it("unquotes double-quoted fields, including quoted reprs and embedded delimiters", async () => {
    const text = [
      'b-1.json "CA_1" "[2.33]"',
      '"b-1.json" "CA 2" 1.25',
      'b-1.json CA_3 "[ 4.5]"',
      'b-1.json "CA ""quoted""" 7',
    ].join("\n");
    const { lines } = await parseText(text);
    expect(okRows(lines)).toEqual([
      ["b-1.json", "CA_1", 2.33, 1],
      ["b-1.json", "CA 2", 1.25, 2],
      ["b-1.json", "CA_3", 4.5, 3],
      ["b-1.json", 'CA "quoted"', 7, 4],
    ]);
  });

  it("reads comma files with quoted fields", async () => {
    const { lines } = await parseText('"b-1.json","CA,1","[2.5]"\r\n"b-1.json","TX_1","3"\r\n');
    expect(okRows(lines)).toEqual([
      ["b-1.json", "CA,1", 2.5, 1],
      ["b-1.json", "TX_1", 3, 2],
    ]);
  });

  it("handles CRLF, LF and lone CR line ends alike", async () => {
    const { lines } = await parseText("b.json A 1\r\nb.json B 2\nb.json C 3\rb.json D 4\r\n");
    expect(okRows(lines)).toEqual([
      ["b.json", "A", 1, 1],
      ["b.json", "B", 2, 2],
      ["b.json", "C", 3, 3],
      ["b.json", "D", 4, 4],
    ]);
  });

  it("skips blank and whitespace-only lines without reporting them, keeping line numbers true", async () => {
    const { lines } = await parseText("\n\nb.json A 1\n   \n\t\r\nb.json B 2\n\n");
    expect(lines).toEqual([
      { ok: true, line: 3, row: { fileName: "b.json", storeId: "A", prediction: 1 } },
      { ok: true, line: 6, row: { fileName: "b.json", storeId: "B", prediction: 2 } },
    ]);
  });

  it("reads Python reprs of the prediction", async () => {
    const text = [
      "b.json A [2.33394885]",
      "b.json B [[1.5]]",
      "b.json C np.float64(0.25)",
      "b.json D (3.5,)",
      "b.json E array([4.5])",
      "b.json F [-1.5e-2]",
      "b.json G 7",
    ].join("\n");
    const { lines } = await parseText(text);
    expect(okRows(lines).map((r) => [r[1], r[2]])).toEqual([
      ["A", 2.33394885],
      ["B", 1.5],
      ["C", 0.25],
      ["D", 3.5],
      ["E", 4.5],
      ["F", -0.015],
      ["G", 7],
    ]);
  });

  it("reports malformed lines in the middle and keeps going", async () => {
    const text = [
      "b.json A 1.5",
      "b.json B", // too few fields
      "b.json C 2.5 extra", // too many
      "b.json D abc", // not a number
      "b.json E nan", // not finite
      "b.json F [1.0 2.0]", // several values
      'b.json "G 3.5', // unclosed quote: must not swallow the next lines
      "b.json H 4.5",
      "b.json I ''",
      "b.json J 5.5",
    ].join("\n");
    const { lines } = await parseText(text);
    expect(okRows(lines)).toEqual([
      ["b.json", "A", 1.5, 1],
      ["b.json", "H", 4.5, 8],
      ["b.json", "J", 5.5, 10],
    ]);
    expect(failures(lines)).toEqual([
      [2, "expected 3 fields (file_name store_id prediction), got 2", "b.json B"],
      [3, "expected 3 fields (file_name store_id prediction), got 4", "b.json C 2.5 extra"],
      [4, 'prediction "abc" is not a finite number', "b.json D abc"],
      [5, 'prediction "nan" is not a finite number', "b.json E nan"],
      [6, 'prediction "[1.0 2.0]" is not a finite number', "b.json F [1.0 2.0]"],
      [7, expect.stringMatching(/^malformed quoting/), 'b.json "G 3.5'],
      [9, expect.stringMatching(/not a finite number/), "b.json I ''"],
    ]);
  });

  it("reports a wrong field count against the header's width", async () => {
    const { lines } = await parseText("file_name,store_id,prediction\nb.json,A,1\nb.json,A\n");
    expect(failures(lines)).toEqual([
      [3, "expected 3 fields (file_name,store_id,prediction), got 2", "b.json,A"],
    ]);
  });

  it("reports an empty store_id or file_name", async () => {
    const { lines } = await parseText('b.json,A,1\nb.json,"",1\n"",A,1\n');
    expect(failures(lines).map((f) => f[1])).toEqual(["store_id is empty", "file_name is empty"]);
  });

  it("keeps path prefixes in file names for the matcher to handle", async () => {
    const { lines } = await parseText("folder/sub/b-1.json CA_1 1\n");
    expect(okRows(lines)).toEqual([["folder/sub/b-1.json", "CA_1", 1, 1]]);
  });
});

describe("parsePredictions: streaming", () => {
  it("survives chunk boundaries inside lines, CRLF pairs and multi-byte characters", async () => {
    const text = Buffer.from("b.json Zürich_1 1.5\r\nb.json Łódź 2.5\r\n", "utf8");
    // Split at every position: the result must not depend on where the chunks break.
    for (let cut = 1; cut < text.length; cut++) {
      const lines = await collect(chunks(text.subarray(0, cut), text.subarray(cut)));
      expect(okRows(lines)).toEqual([
        ["b.json", "Zürich_1", 1.5, 1],
        ["b.json", "Łódź", 2.5, 2],
      ]);
    }
  });

  it("reads a Node readable stream of many rows, sniffing only the first lines", async () => {
    const rows = Array.from({ length: 5_000 }, (_, i) => `b-9.json S${i} ${i / 10}\n`);
    const stream = Readable.from(rows.map((r) => Buffer.from(r)));
    const lines = await collect(stream, { sniffLines: 5 });
    expect(lines).toHaveLength(5_000);
    expect(lines.every((l) => l.ok)).toBe(true);
    expect(lines[4_999]).toEqual({
      ok: true,
      line: 5_000,
      row: { fileName: "b-9.json", storeId: "S4999", prediction: 499.9 },
    });
  });

  it("accepts string chunks and a BOM", async () => {
    const lines = await collect(chunks("\uFEFFb.json A", " 1\nb.json B 2"));
    expect(okRows(lines)).toEqual([
      ["b.json", "A", 1, 1],
      ["b.json", "B", 2, 2],
    ]);
  });

  it("handles an empty input and a file with no final newline", async () => {
    expect(await collect(chunks())).toEqual([]);
    expect(await collect(chunks(""))).toEqual([]);
    expect(okRows(await collect(chunks("b.json A 1")))).toEqual([["b.json", "A", 1, 1]]);
  });

  it("reports an over-long line without holding it, then carries on", async () => {
    const long = `b.json ${"x".repeat(5_000)} 1`;
    const lines = await collect(
      chunks("b.json A 1\n", long.slice(0, 2_000), long.slice(2_000), "\nb.json B 2\n"),
      {
        maxLineLength: 1_000,
        maxRawLength: 50,
      },
    );
    expect(okRows(lines)).toEqual([
      ["b.json", "A", 1, 1],
      ["b.json", "B", 2, 3],
    ]);
    const bad = lines[1];
    expect(bad?.ok).toBe(false);
    if (bad !== undefined && !bad.ok) {
      expect(bad.reason).toBe("line longer than 1000 characters");
      expect(bad.raw.length).toBeLessThanOrEqual(53);
    }
  });

  it("cuts raw to maxRawLength", async () => {
    const lines = await collect(chunks(`b.json A ${"z".repeat(400)}\n`));
    expect(lines[0]?.ok).toBe(false);
    if (lines[0] !== undefined && !lines[0].ok) expect(lines[0].raw).toHaveLength(259);
  });

  it("stops reading the stream when the caller stops early", async () => {
    const stream = Readable.from(Array.from({ length: 100 }, (_, i) => `b.json S${i} 1\n`));
    let seen = 0;
    for await (const _ of parsePredictions(stream)) {
      seen += 1;
      if (seen === 3) break;
    }
    expect(seen).toBe(3);
    expect(stream.destroyed).toBe(true);
  });

  it("propagates errors of the input stream itself", async () => {
    async function* failing(): AsyncGenerator<Buffer> {
      yield Buffer.from("b.json A 1\n");
      throw new Error("connection reset");
    }
    await expect(collect(failing())).rejects.toThrow("connection reset");
  });

  it("honours a forced delimiter", async () => {
    const { lines, format } = await parseText("b.json,A,1\n", { delimiter: " " });
    expect(format.delimiter).toBe(" ");
    expect(lines.map((l) => l.ok)).toEqual([false]);
  });

  it("rejects bad options with RangeErrors naming them", async () => {
    await expect(collect(chunks(""), { sniffLines: 0 })).rejects.toThrow(/sniffLines/);
    await expect(collect(chunks(""), { maxLineLength: -1 })).rejects.toThrow(RangeError);
    await expect(collect(chunks(""), { delimiter: ";" as never })).rejects.toThrow(/delimiter/);
  });

  it("never throws on random garbage", async () => {
    for (let i = 0; i < 200; i++) {
      const bytes = Buffer.alloc(1 + Math.floor(Math.random() * 400));
      const alphabet = Buffer.from(' \t,\r\n"[]()0123456789.eE-abc_/\u00e9');
      for (let j = 0; j < bytes.length; j++)
        bytes[j] = alphabet[Math.floor(Math.random() * alphabet.length)] ?? 0;
      const lines = await collect(chunks(bytes));
      for (const line of lines) {
        expect(line.line).toBeGreaterThan(0);
        if (line.ok) expect(Number.isFinite(line.row.prediction)).toBe(true);
      }
    }
  });
});

describe("parsePredictions: results that must not depend on chunking or line ends", () => {
  it("drops one leading BOM of a file that starts with two, wherever the chunks break", async () => {
    // Too few fields: the line comes back as raw, with its second BOM.
    const bytes = Buffer.from([0xef, 0xbb, 0xbf, 0xef, 0xbb, 0xbf, ...Buffer.from("b.json A\n")]);
    const expected = [{ ok: false, line: 1, reason: expect.any(String), raw: "\ufeffb.json A" }];
    expect(await collect(chunks(bytes))).toEqual(expected);
    for (let cut = 1; cut < bytes.length; cut++) {
      expect(await collect(chunks(bytes.subarray(0, cut), bytes.subarray(cut)))).toEqual(expected);
    }
    // One BOM, split or not, is dropped: the row is read.
    const one = Buffer.from([0xef, 0xbb, 0xbf, ...Buffer.from("b.json A 1\n")]);
    expect(okRows(await collect(chunks(one.subarray(0, 1), one.subarray(1))))).toEqual([
      ["b.json", "A", 1, 1],
    ]);
  });

  it("reports the same raw for an over-long line however it is cut, even when maxLineLength < maxRawLength", async () => {
    const line = "x".repeat(302);
    const expected = [
      { ok: false, line: 1, reason: "line longer than 1 characters", raw: `${"x".repeat(256)}...` },
    ];
    expect(await collect(chunks(line), { maxLineLength: 1 })).toEqual(expected);
    expect(await collect(chunks(line.slice(0, 2), line.slice(2)), { maxLineLength: 1 })).toEqual(expected);
    expect(await collect(chunks(...line.split("")), { maxLineLength: 1 })).toEqual(expected);
    const short = [{ ok: false, line: 1, reason: "line longer than 2 characters", raw: "xyz" }];
    expect(await collect(chunks("x", "y", "z"), { maxLineLength: 2 })).toEqual(short);
  });

  it("reads every row of a CR-only file, judging each line's length on its own", async () => {
    const { lines } = await parseText("b.json A 1\rb.json B 2\r\rb.json C 3\r", { maxLineLength: 10 });
    expect(okRows(lines)).toEqual([
      ["b.json", "A", 1, 1],
      ["b.json", "B", 2, 2],
      ["b.json", "C", 3, 4],
    ]);
  });

  it("does not count a line's CR or CRLF toward maxLineLength, and keeps a CRLF split across chunks one line end", async () => {
    // Each line is exactly 10 characters.
    const text = "b.json A 1\r\nb.json B 2\rb.json C 3\n";
    expect(okRows(await collect(chunks(text), { maxLineLength: 10 }))).toEqual([
      ["b.json", "A", 1, 1],
      ["b.json", "B", 2, 2],
      ["b.json", "C", 3, 3],
    ]);
    for (let cut = 1; cut < text.length; cut++) {
      const lines = await collect(chunks(text.slice(0, cut), text.slice(cut)), { maxLineLength: 10 });
      expect(okRows(lines).map((r) => r[3])).toEqual([1, 2, 3]);
      expect(lines.every((l) => l.ok)).toBe(true);
    }
    expect(await collect(chunks("b.json A 10\r\n"), { maxLineLength: 10 })).toEqual([
      { ok: false, line: 1, reason: "line longer than 10 characters", raw: "b.json A 10" },
    ]);
  });
});

describe("parsePredictions: store ids that look like delimiters or brackets", () => {
  it("reads a space file whose store ids hold commas as a space file", async () => {
    const { lines, format } = await parseText("b-1-0.json a,b,c 1.5\n");
    expect(format.delimiter).toBe(" ");
    expect(okRows(lines)).toEqual([["b-1-0.json", "a,b,c", 1.5, 1]]);
  });

  it("reads a space file whose store id starts and ends with a comma as a space file", async () => {
    // Split by comma it reads as (b.json, A, 2.5) too, but only a comma file padded on one side of its first
    // comma and on the other side of its second would look like this.
    const { lines, format } = await parseText("b.json ,A, 2.5\nb.json ,A, 3.5\n");
    expect(format.delimiter).toBe(" ");
    expect(okRows(lines).map((r) => r[1])).toEqual([",A,", ",A,"]);
  });

  it("still reads a comma file padded after its commas, and one with a padded header, as comma files", async () => {
    const padded = await parseText("data, CA_1, 2.5\ndata, CA_2, 3.5\n");
    expect(padded.format.delimiter).toBe(",");
    expect(okRows(padded.lines).map((r) => r[1])).toEqual(["CA_1", "CA_2"]);
    const header = await parseText("file , store , pred\nb.json , CA_1 , [ 2.5]\n");
    expect(header.format.delimiter).toBe(",");
    expect(okRows(header.lines)).toEqual([["b.json", "CA_1", 2.5, 2]]);
  });

  it("never joins a store id that opens a bracket with the prediction", async () => {
    const { lines } = await parseText(
      ["b.json [ [2.5]", "b.json (A np.float64(2.5)", "b.json [ [ 3.5]", "b.json (x (4.5,)"].join("\n"),
    );
    expect(okRows(lines)).toEqual([
      ["b.json", "[", 2.5, 1],
      ["b.json", "(A", 2.5, 2],
      ["b.json", "[", 3.5, 3],
      ["b.json", "(x", 4.5, 4],
    ]);
  });

  it("joins a split repr wherever the prediction column is", async () => {
    const { lines } = await parseText("prediction store_id file_name\n[ 2.5] A b.json\n");
    expect(okRows(lines)).toEqual([["b.json", "A", 2.5, 2]]);
    const comma = await parseText("b.json,(,(2.5,)\n");
    expect(okRows(comma.lines)).toEqual([["b.json", "(", 2.5, 1]]);
  });
});

describe("parsePredictionValue", () => {
  it.each([
    ["2.33394885", 2.33394885],
    [" 2 ", 2],
    ["[2.5]", 2.5],
    ["[ 2.5 ]", 2.5],
    ["'3'", 3],
    ["np.float32(1e3)", 1000],
    [".5", 0.5],
    ["-0", -0],
    ["+4.", 4],
  ])("reads %j", (text, value) => {
    expect(parsePredictionValue(text)).toBe(value);
  });

  it.each(["", "[]", "nan", "inf", "-Infinity", "0x10", "1,5", "[1, 2]", "abc", "1e999", "[[1]"])(
    "refuses %j",
    (text) => {
      expect(parsePredictionValue(text)).toBeUndefined();
    },
  );
});
