// Compile every .py under a folder to CPython 3.13 bytecode, with Pyodide's CPython 3.13
// (WebAssembly, on Node): the Lambda runtime is python3.13 and the build machine may have
// no CPython 3.13. Bytecode depends on the interpreter's minor version only, not on the
// platform. The .pyc files are "unchecked-hash": the runtime uses them without comparing
// them with the sources' timestamps (which a zip does not keep reliably).
//
//   node scripts/compile_pyc.mjs PYODIDE_DIR FOLDER
//
// Prints one JSON line: {"version", "cache_tag", "magic", "compiled"}.
import { pathToFileURL } from "node:url";
import path from "node:path";

const [pyodideDir, folder] = process.argv.slice(2);
if (!pyodideDir || !folder) {
  console.error("usage: node compile_pyc.mjs PYODIDE_DIR FOLDER");
  process.exit(2);
}
const { loadPyodide } = await import(pathToFileURL(path.join(pyodideDir, "pyodide.mjs")).href);
const py = await loadPyodide({ indexURL: pyodideDir + path.sep });
py.FS.mkdir("/package");
py.FS.mount(py.FS.filesystems.NODEFS, { root: path.resolve(folder) }, "/package");
const report = py.runPython(`
import compileall, importlib.util, json, pathlib, py_compile, sys
ok = compileall.compile_dir(
    "/package", quiet=1, workers=1,
    invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
)
json.dumps({
    "ok": bool(ok),
    "version": sys.version.split()[0],
    "cache_tag": sys.implementation.cache_tag,
    "magic": importlib.util.MAGIC_NUMBER.hex(),
    "compiled": sum(1 for _ in pathlib.Path("/package").rglob("*.pyc")),
})
`);
console.log(report);
process.exit(JSON.parse(report).ok ? 0 : 1);
