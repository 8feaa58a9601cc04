/* The dial form as the person types: the simple rules (missing, characters, a number already
 * too long) are checked at once in the browser, with the texts the server uses, so the field
 * says aria-invalid="true" and its message (aria-describedby) says what to type before the
 * server's answer for the field arrives. That answer (POST /dial/check, swapped in by htmx)
 * has the last word: these checks never refuse what the server accepts, they only speak first.
 *
 * The rules come with each field as data-check (desk.web.dial.CHECKS, built from
 * desk.providers.teleforge.rules); nothing here knows a message of its own. After a submit
 * the server's answer puts the focus on the first field with a mistake, or on "Dial anyway"
 * (autofocus); "Cancel" next to that question puts it away. */
(function () {
  "use strict";

  // As desk.providers.teleforge.rules.normalise_number: what people paste around a number.
  // Python's \s also takes \x1c-\x1f and \x85, JavaScript's does not: they are listed.
  var SPACE = "\\s\\x1c-\\x1f\\x85";
  var PUNCTUATION = new RegExp("[" + SPACE + "\\u200b-\\u200d\\u2060\\ufeff\\-\\u2010-\\u2015\\u2212.()\\[\\]/]", "gu");
  var TRUNK_ZERO = new RegExp("\\([" + SPACE + "]*0[" + SPACE + "]*\\)", "gu");
  var EDGES = new RegExp("^[" + SPACE + "]+|[" + SPACE + "]+$", "gu");
  var DECIMAL = /\p{Nd}/u;

  function strip(text) { return text.replace(EDGES, ""); }

  function normalise(raw) {
    var text = strip(raw);
    if (text.startsWith("+") || text.startsWith("00")) text = text.replace(TRUNK_ZERO, "");
    text = text.replace(PUNCTUATION, "");
    return text.startsWith("+") ? "00" + text.slice(1) : text;
  }

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (all, key) {
      return Object.prototype.hasOwnProperty.call(values, key) ? String(values[key]) : all;
    });
  }

  function characterNames(form) {
    try { return JSON.parse(form.getAttribute("data-character-names") || "{}"); } catch (err) { return {}; }
  }

  // As rules.name_characters: each character once, in code point order, the invisible by name.
  function nameCharacters(chars, naming) {
    var names = naming.names || {};
    var unique = Array.from(new Set(chars)).sort(function (a, b) { return a.codePointAt(0) - b.codePointAt(0); });
    var said = [];
    unique.slice(0, naming.most || 10).forEach(function (ch) {
      var name = Object.prototype.hasOwnProperty.call(names, ch) ? names[ch] : "\u201c" + ch + "\u201d";
      if (said.indexOf(name) < 0) said.push(name);
    });
    return said.join(", ");
  }

  function rulesOf(input) {
    try { return JSON.parse(input.getAttribute("data-check") || "{}"); } catch (err) { return {}; }
  }

  /* The message for what is in the field now, or null when these rules find nothing. A field
   * left empty is only "missing" once the person has typed in it (data-dial-touched). */
  function problem(input) {
    var rules = rulesOf(input);
    var value = rules.number ? normalise(input.value) : strip(input.value);
    var chars = Array.from(value);
    if (!chars.length) return rules.required && input.hasAttribute("data-dial-touched") ? rules.required : null;
    if (rules.length && chars.length > rules.length[0]) return fill(rules.length[1], { n: chars.length });
    if (rules.allowed) {
      var allowed = new RegExp("^" + rules.allowed + "$", "u");
      var bad = chars.filter(function (ch) { return !allowed.test(ch); });
      if (bad.length) {
        if (rules.digits && bad.some(function (ch) { return DECIMAL.test(ch); })) return rules.digits;
        return fill(rules.characters, { chars: nameCharacters(bad, characterNames(input.form)) });
      }
    }
    var longest = rules.longest || [];
    for (var i = 0; i < longest.length; i++) {
      var prefix = longest[i][0], skip = longest[i][1], most = longest[i][2];
      if (value.startsWith(prefix)) {
        var n = chars.length - skip;
        return n > most ? fill(longest[i][3], { n: n }) : null;
      }
    }
    return null;
  }

  function messageOf(input) {
    return document.getElementById(input.getAttribute("aria-describedby") || "");
  }

  function markInvalid(input, invalid) {
    if (invalid) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
    var field = input.closest(".field");
    if (field) field.classList.toggle("field--invalid", invalid);
  }

  function say(input, text) {
    var message = messageOf(input);
    if (message) {
      message.textContent = text;
      message.className = "field-msg field-msg--error";
    }
    markInvalid(input, true);
  }

  function checkable(target) {
    return target && target.matches && target.matches("[data-dial-form] [data-check]");
  }

  // Typing: speak at once when a simple rule is broken; otherwise the server's answer decides.
  document.addEventListener("input", function (event) {
    var input = event.target;
    if (!checkable(input)) return;
    if (input.value) input.setAttribute("data-dial-touched", "");
    var text = problem(input);
    if (text) say(input, text);
  });

  // The server's message for a field arrived: it decides, unless it is only the field's hint
  // while a simple rule here is broken (a field emptied again: the server shows its hint).
  document.addEventListener("htmx:afterSettle", function (event) {
    var message = event.target;  // the new message element htmx swapped in
    if (!message || !message.id || !message.classList || !message.classList.contains("field-msg")) return;
    var input = document.querySelector('[data-dial-form] [aria-describedby="' + message.id + '"]');
    if (!checkable(input)) return;
    if (message.classList.contains("field-msg--error")) return markInvalid(input, true);
    var text = problem(input);
    if (text) say(input, text);
    else markInvalid(input, false);
  });

  // "Cancel" next to "Dial anyway": put the question away and go back to the number.
  document.addEventListener("click", function (event) {
    var button = event.target && event.target.closest ? event.target.closest("[data-dial-cancel]") : null;
    if (!button) return;
    var question = button.closest("[data-dial-question]");
    var form = button.form;
    if (question) question.remove();
    var number = form && form.querySelector("[name='callee']");
    if (number) number.focus();
  });
})();
