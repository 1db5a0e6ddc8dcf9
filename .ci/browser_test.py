#!/usr/bin/env python3
"""The web page (GET /) in headless Chromium against a running stylist server.

Usage: browser_test.py BASE_URL OUT_DIR [KEYED_BASE_URL]   (run by .ci/browser, which starts the servers)
KEYED_BASE_URL is a server with api_keys = [$BROWSER_API_KEY].

Cases: a job from the page (content + style files, result shown at the content's size,
download link); a registered style picked from the thumbnail gallery; cancel of a large job; a
non-image upload (the page shows the problem title); no CSP violation in the console; no
horizontal scroll at phone width; with API keys, the page shows 401 until the key is entered,
keeps it in localStorage and runs a job with it. Saves OUT_DIR/page.png.
"""
import os
import sys
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

BASE, OUT = sys.argv[1], sys.argv[2]
KEYED = sys.argv[3] if len(sys.argv) > 3 else None
API_KEY = os.environ.get("BROWSER_API_KEY", "")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("STYLIST_SHARED") or os.path.join(REPO, "..", "shared")


def pick(*candidates):
    for c in candidates:
        if os.path.isfile(c):
            return os.path.abspath(c)
    raise SystemExit("none of these files exists: %s" % ", ".join(candidates))


CONTENT = pick(os.path.join(SHARED, "golden/microast-cornell-matisse.content.png"), os.path.join(REPO, "docs/cornell-matisse.jpg"))
STYLE = pick(os.path.join(SHARED, "golden/microast-cornell-matisse.style0.png"), os.path.join(REPO, "docs/golden-gate-mondrian-a06.jpg"))
SHOW = [os.path.join(SHARED, "images/content/cornell.jpg"), os.path.join(SHARED, "images/style/woman_with_hat_matisse.jpg")]
BIG = pick(os.path.join(SHARED, "images/content/golden_gate.jpg"), os.path.join(REPO, "docs/golden-gate-mix.jpg"))

failures = []


def register_style(path, name):
    """POST /v1/styles (multipart) outside the browser; returns the style id."""
    import json
    import urllib.request
    boundary = "----stylist-browser-test"
    with open(path, "rb") as f:
        image = f.read()
    body = (("--%s\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n%s\r\n" % (boundary, name)).encode()
            + ("--%s\r\nContent-Disposition: form-data; name=\"style\"; filename=\"s.png\"\r\n"
               "Content-Type: application/octet-stream\r\n\r\n" % boundary).encode() + image
            + ("\r\n--%s--\r\n" % boundary).encode())
    req = urllib.request.Request(BASE + "/v1/styles", data=body, method="POST",
                                 headers={"Content-Type": "multipart/form-data; boundary=" + boundary})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())["id"]


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)


def state(d):
    return d.execute_script("return document.body.dataset.state")


def wait_state(d, states, timeout=120):
    WebDriverWait(d, timeout, poll_frequency=0.05).until(lambda d: state(d) in states)
    return state(d)


opts = Options()
for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1000"]:
    opts.add_argument(a)
opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
if os.path.exists("/usr/bin/chromium"):
    opts.binary_location = "/usr/bin/chromium"
service = Service(executable_path="/usr/bin/chromedriver") if os.path.exists("/usr/bin/chromedriver") else Service()
d = webdriver.Chrome(options=opts, service=service)
try:
    sid = register_style(STYLE, "Matisse")
    d.get(BASE + "/")
    wait_state(d, ["idle"], 20)
    WebDriverWait(d, 20).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#model option")) > 0)
    models = [o.get_attribute("value") for o in d.find_elements(By.CSS_SELECTOR, "#model option")]
    check("microast" in models, "models listed from /v1/models: %s" % models)
    # Every form control has a label.
    unlabeled = d.execute_script(
        "return [...document.querySelectorAll('input,select')].filter(e => e.type !== 'hidden' && e.labels.length === 0).map(e => e.id || e.name)")
    check(unlabeled == [], "every input has a label (unlabeled: %s)" % unlabeled)

    WebDriverWait(d, 20).until(lambda d: d.execute_script(
        "const i = document.querySelector('#gallery img'); return i && i.complete && i.naturalWidth > 0"))
    thumb = d.execute_script("const i = document.querySelector('#gallery img'); return [i.naturalWidth, i.naturalHeight, i.src]")
    check(max(thumb[:2]) <= 192 and thumb[2].startswith("blob:"), "registered style shown as a thumbnail: %s" % thumb)

    # 1. A job: content + style file, follow it, the result is shown at the content's size.
    d.find_element(By.ID, "content").send_keys(CONTENT)
    d.find_element(By.ID, "style").send_keys(STYLE)
    WebDriverWait(d, 10).until(lambda d: d.execute_script(
        "const i = document.querySelector('#contentpreview img'); return i && i.complete && i.naturalWidth > 0"))
    cw, ch = d.execute_script("const i = document.querySelector('#contentpreview img'); return [i.naturalWidth, i.naturalHeight]")
    scale = min(1.0, 512.0 / max(cw, ch))    # the default max_size
    expected = [cw, ch] if scale == 1.0 else [round(cw * scale), round(ch * scale)]
    t0 = time.time()
    d.find_element(By.ID, "submit").click()
    seen = set()
    WebDriverWait(d, 120, poll_frequency=0.02).until(lambda d: seen.add(state(d)) or state(d) in ("succeeded", "failed", "error", "canceled"))
    final = state(d)
    check(final == "succeeded", "job succeeded in the page (%.1f s; states seen %s; status: %s)"
          % (time.time() - t0, sorted(s for s in seen if s), d.find_element(By.ID, "statustext").text))
    size = d.execute_script("const i = document.getElementById('result'); return [i.naturalWidth, i.naturalHeight]")
    check(size == expected, "result image decodes at %s, expected %s (content %dx%d)" % (size, expected, cw, ch))
    link = d.find_element(By.ID, "download")
    check(link.is_displayed() and link.get_attribute("href").startswith("blob:") and link.get_attribute("download").endswith(".png"),
          "download link: %s %s" % (link.get_attribute("href"), link.get_attribute("download")))
    check(d.find_element(By.ID, "progress").get_attribute("value") in ("1", "1.0"), "progress bar full")
    # 1a. The registered style from the gallery instead of a file.
    d.execute_script("const s = document.getElementById('style'); s.value = ''; s.dispatchEvent(new Event('change'))")
    box = d.find_element(By.CSS_SELECTOR, "#gallery input[value='%s']" % sid)
    box.click()
    d.find_element(By.ID, "submit").click()
    wait_state(d, ["queued", "running", "uploading", "loading-result"], 30)
    final = wait_state(d, ["succeeded", "failed", "error", "canceled"], 120)
    size = d.execute_script("const i = document.getElementById('result'); return [i.naturalWidth, i.naturalHeight]")
    check(final == "succeeded" and size == expected, "job with the registered style: %s %s" % (final, size))
    box.click()

    # 1c. Two styles and a mask: the mask field appears only with exactly two styles.
    mask = os.path.join(SHARED, "golden-mask/microast-cornell-mask.mask.png")
    if os.path.isfile(mask):
        check(not d.find_element(By.ID, "maskrow").is_displayed(), "no mask field with one style")
        d.find_element(By.ID, "style").send_keys(STYLE + "\n" + STYLE)
        check(d.find_element(By.ID, "maskrow").is_displayed(), "mask field shown with two styles")
        d.find_element(By.ID, "mask").send_keys(mask)
        d.find_element(By.ID, "submit").click()
        wait_state(d, ["queued", "running", "uploading", "loading-result", "error"], 30)
        final = wait_state(d, ["succeeded", "failed", "error", "canceled"], 120)
        size = d.execute_script("const i = document.getElementById('result'); return [i.naturalWidth, i.naturalHeight]")
        check(final == "succeeded" and size == expected, "two styles and a mask: %s %s %s" % (final, size, d.find_element(By.ID, "errordetail").text))
        d.execute_script("const s = document.getElementById('style'); s.value = ''; s.dispatchEvent(new Event('change'))")
        check(not d.find_element(By.ID, "maskrow").is_displayed(), "mask field hidden again")

    # 1b. For the screenshot: a real photo and painting at 512 px, when ../shared has them.
    if all(os.path.isfile(p) for p in SHOW):
        d.find_element(By.ID, "content").send_keys(SHOW[0])
        d.execute_script("const s = document.getElementById('style'); s.value = ''; s.dispatchEvent(new Event('change'))")
        d.find_element(By.ID, "style").send_keys(SHOW[1])   # (chromedriver adds to a multiple input: cleared first)
        d.find_element(By.ID, "submit").click()
        wait_state(d, ["queued", "running", "uploading", "loading-result"], 30)
        final = wait_state(d, ["succeeded", "failed", "error", "canceled"], 120)
        size = d.execute_script("const i = document.getElementById('result'); return [i.naturalWidth, i.naturalHeight]")
        check(final == "succeeded" and max(size) == 512, "cornell x matisse at 512 px: %s %s" % (final, size))
    d.execute_script("window.scrollTo(0, 0)")
    os.makedirs(OUT, exist_ok=True)
    d.save_screenshot(os.path.join(OUT, "page.png"))
    print("screenshot: %s" % os.path.join(OUT, "page.png"))

    # 2. Cancel: a large picture at 2048 px, canceled as soon as it is accepted.
    d.find_element(By.ID, "content").send_keys(BIG)
    d.find_element(By.ID, "maxsize").send_keys("2048")
    d.find_element(By.ID, "submit").click()
    wait_state(d, ["queued", "running", "error"], 30)
    check(state(d) in ("queued", "running"), "large job accepted (%s)" % state(d))
    WebDriverWait(d, 10).until(lambda d: d.find_element(By.ID, "cancel").is_enabled())
    d.find_element(By.ID, "cancel").click()
    final = wait_state(d, ["canceled", "succeeded", "failed", "error"], 120)
    check(final == "canceled", "cancel: the job ends canceled (%s; status: %s)" % (final, d.find_element(By.ID, "statustext").text))
    d.find_element(By.ID, "maxsize").clear()

    # 3. A file that is not an image: the page shows the problem's title and detail.
    with tempfile.NamedTemporaryFile("w", suffix=".png", delete=False) as f:
        f.write("this is not an image\n")
        bogus = f.name
    d.find_element(By.ID, "content").send_keys(bogus)
    d.find_element(By.ID, "submit").click()
    wait_state(d, ["error", "queued", "running"], 30)
    title = d.find_element(By.ID, "errortitle").text
    detail = d.find_element(By.ID, "errordetail").text
    check(state(d) == "error" and d.find_element(By.ID, "error").is_displayed() and title == "Unsupported Media Type",
          "non-image upload shows the problem: %r / %r" % (title, detail))
    os.unlink(bogus)

    # The console has no CSP violation or script error.
    logs = [l for l in d.get_log("browser") if l.get("level") == "SEVERE"]
    csp = [l["message"] for l in logs if "Content Security Policy" in l["message"] or "Refused" in l["message"]]
    check(csp == [], "no CSP violations (%s)" % csp)
    script_errors = [l["message"] for l in logs if "app.js" in l["message"] and "Failed to load resource" not in l["message"]]
    check(script_errors == [], "no script errors (%s)" % script_errors)

    # Phone-sized: no horizontal scrolling at 390 px.
    d.set_window_size(390, 844)
    time.sleep(0.3)
    sw, iw = d.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    check(sw <= iw, "no horizontal scroll at phone width (scrollWidth %d, innerWidth %d)" % (sw, iw))
    d.set_window_size(1280, 1000)

    # 4. With API keys: 401 shown until the key is entered; kept in localStorage; a job runs with it.
    if KEYED:
        d.get(KEYED + "/")
        WebDriverWait(d, 20).until(lambda d: d.find_element(By.ID, "error").is_displayed())
        check(d.find_element(By.ID, "errortitle").text == "Unauthorized", "keyed server without a key: the page shows %r"
              % d.find_element(By.ID, "errortitle").text)
        d.find_element(By.CSS_SELECTOR, "#keybox summary").click()
        d.find_element(By.ID, "apikey").send_keys(API_KEY)
        d.find_element(By.ID, "savekey").click()
        WebDriverWait(d, 20).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#model option")) > 0)
        d.refresh()
        wait_state(d, ["idle"], 20)
        WebDriverWait(d, 20).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#model option")) > 0)
        check(d.execute_script("return localStorage.getItem('stylist.apiKey')") == API_KEY, "the key is kept in localStorage")
        d.find_element(By.ID, "content").send_keys(CONTENT)
        d.find_element(By.ID, "style").send_keys(STYLE)
        d.find_element(By.ID, "submit").click()
        wait_state(d, ["queued", "running", "uploading", "loading-result", "error"], 30)
        final = wait_state(d, ["succeeded", "failed", "error", "canceled"], 120)
        size = d.execute_script("const i = document.getElementById('result'); return [i.naturalWidth, i.naturalHeight]")
        check(final == "succeeded" and size == expected, "job with the API key (events read with fetch + Bearer): %s %s %s"
              % (final, size, d.find_element(By.ID, "errordetail").text))
finally:
    d.quit()

failures = [f for f in failures if f]
if failures:
    print("%d browser check(s) failed" % len(failures))
    sys.exit(1)
print("browser tests passed")
