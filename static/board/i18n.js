/* The page scripts' words in the page's language.
 *
 * The server puts the "js" catalogue of the page's language into the page as JSON
 * (<script type="application/json" id="desk-i18n">, desk/i18n.py); every script takes
 * its words from here: `var _ = window.DeskI18n.gettext;` then `_("Hung up")`, with
 * `%(name)s` filled from an object: `_("Calling %(number)s…", {number: n})`. Strings
 * written this way are what `make i18n-extract` collects from static/ (babel's JavaScript
 * extractor looks for _() and ngettext()). A word missing from the catalogue stays
 * English. Numbers and times are formatted with Intl in the page's language
 * (<html lang>). */
(function () {
  "use strict";

  var catalogue = {};
  var node = document.getElementById("desk-i18n");
  if (node) {
    try { catalogue = JSON.parse(node.textContent) || {}; } catch (e) { catalogue = {}; }
  }
  var language = document.documentElement.lang || "en";

  function fill(text, params) {
    if (!params) return text;
    return text.replace(/%\((\w+)\)s/g, function (whole, key) {
      return Object.prototype.hasOwnProperty.call(params, key) ? String(params[key]) : whole;
    });
  }

  function gettext(msgid, params) {
    var text = catalogue[msgid];
    return fill(typeof text === "string" && text ? text : msgid, params);
  }

  // Plural forms as the catalogues' headers say: Vietnamese has one, English and German two.
  function ngettext(singular, plural, n, params) {
    var forms = catalogue[singular];
    var index = language === "vi" ? 0 : (n === 1 ? 0 : 1);
    var text = Array.isArray(forms) && forms[index] ? forms[index] : (n === 1 ? singular : plural);
    var values = { num: n };
    if (params) Object.keys(params).forEach(function (k) { values[k] = params[k]; });
    return fill(text, values);
  }

  window.DeskI18n = { gettext: gettext, ngettext: ngettext, language: language };
})();
