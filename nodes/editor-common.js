// Editor helpers shared by every node set of the package. scripts/copy-assets.js puts this file at the top of
// each node set's editor HTML (dist/nodes/<set>.html), so a set works alone when the others are disabled in the
// Palette Manager; the guard keeps one copy when several sets load.
window.mlcEditor = window.mlcEditor || (function () {
  var ENV_REF = /^\$\{\S+\}$/;

  /** POST the dialog's fields to the admin test endpoint (mlc/<type>/test) and show the answer in $out. */
  function testConnection(type, node, fields, credFields, $out) {
    var config = {}, credentials = {};
    fields.forEach(function (f) { config[f] = $("#node-config-input-" + f).val(); });
    credFields.forEach(function (f) { credentials[f] = $("#node-config-input-" + f).val(); });
    $out.removeClass("mlc-ok mlc-fail").text("…");
    $.ajax({ url: "mlc/" + type + "/test", type: "POST", contentType: "application/json",
      data: JSON.stringify({ id: node.id, config: config, credentials: credentials }) })
      .done(function (r) { $out.addClass(r.ok ? "mlc-ok" : "mlc-fail").text(r.message + (r.code && !r.ok ? " [" + r.code + "]" : "")); })
      .fail(function (x) { $out.addClass("mlc-fail").text("HTTP " + x.status); });
  }

  /**
   * A TypedInput whose empty value means "not used" (the runtime skips empty properties): an empty field is
   * not marked invalid, whatever type is selected; a non-empty one is validated as that type.
   */
  function optionalTypedInput(selector, opts) {
    var $el = $(selector);
    $el.typedInput(opts);
    var widget = $el.data("nodered-typedInput");
    if (widget && widget.typeMap) {
      Object.keys(widget.typeMap).forEach(function (k) {
        var t = widget.typeMap[k];
        if (!t || !t.validate) return;
        var inner = t.validate;
        widget.typeMap[k] = $.extend({}, t, { validate: function (v, o) {
          if (v === "" || v === undefined) return true;
          return typeof inner === "function" ? inner.call(this, v, o) : inner.test(v);
        } });
      });
      $el.typedInput("validate");
    }
    return $el;
  }

  /** Path of a package endpoint below the Node-RED HTTP root: "/mlc/acumatica/bills". */
  function endpointPath(family, endpoint) {
    var root = ((RED.settings && RED.settings.httpNodeRoot) || "/").replace(/\/+$/, "");
    return root + "/mlc/" + family + "/" + (endpoint || "");
  }

  /** Public base URL (as the runtime joins it: base + httpNodeRoot + /mlc/…): the given Twilio config's, else the first Twilio config's that has one, else this editor's origin. */
  function publicBase(twilioId) {
    var cfg = twilioId && RED.nodes.node(twilioId);
    var base = cfg && cfg.publicBaseUrl;
    if (!base) RED.nodes.eachConfig(function (n) { if (!base && n.type === "mlc-twilio-config" && n.publicBaseUrl) base = n.publicBaseUrl; });
    return { url: (base || window.location.origin).replace(/\/+$/, ""), fromConfig: !!base };
  }

  /**
   * Show the full public URL of a webhook in $row (with a copy button), refreshed when the inputs change.
   * @param compute () => { family, endpoint, twilio } read from the open dialog
   */
  function showWebhookUrl($row, compute, inputs) {
    var $code = $('<code class="mlc-url"></code>');
    var $copy = $('<button type="button" class="red-ui-button red-ui-button-small mlc-copy"><i class="fa fa-clipboard"></i></button>');
    $row.empty().append($code).append(" ").append($copy);
    var update = function () {
      var c = compute();
      $code.text(publicBase(c.twilio).url + endpointPath(c.family, c.endpoint));
    };
    $copy.on("click", function () { RED.clipboard.copyText($code.text(), $copy, "clipboard.copied"); });
    $(inputs).on("change keyup input", update);
    update();
  }

  /** Context stores defined in settings.js (contextStorage), or null when the editor was not told. */
  function stores() {
    var ctx = RED.settings.context;
    return ctx && Array.isArray(ctx.stores) ? ctx.stores : null;
  }

  /** A store name is valid when empty (default store) or defined in settings.contextStorage. */
  function validStore(v) {
    if (!v) return true;
    var s = stores();
    return s === null ? true : s.indexOf(v) !== -1;
  }

  /**
   * Turn the store field into a dropdown: "" = default store, every configured store, and an unknown current
   * value kept (marked) so it is visible instead of silently replaced.
   */
  function storeSelect(node, selector) {
    var $sel = $(selector);
    var list = stores() || [];
    var def = RED.settings.context && RED.settings.context.default;
    var current = $sel.val() || node.store || "";
    $sel.empty();
    $("<option>").val("").text(node._("mlc-common.defaultStore") + (def ? " (" + def + ")" : "")).appendTo($sel);
    list.forEach(function (s) { $("<option>").val(s).text(s).appendTo($sel); });
    if (current && list.indexOf(current) === -1) $("<option>").val(current).text(current + " — " + node._("mlc-common.undefinedStore")).appendTo($sel);
    $sel.val(current);
  }

  $("<style>").text(".mlc-ok{color:#3a7d2c}.mlc-fail{color:#c0392b}code.mlc-url{word-break:break-all;white-space:normal}" +
    ".mlc-inline input{width:60px}.mlc-inline span.mlc-rate{display:inline-block;min-width:110px}").appendTo("head");

  return { ENV_REF: ENV_REF, validStore: validStore, storeSelect: storeSelect, testConnection: testConnection, optionalTypedInput: optionalTypedInput, endpointPath: endpointPath, showWebhookUrl: showWebhookUrl };
})();
// Kept for flows and fragments that call the older global name.
window.mlcTestConnection = window.mlcTestConnection || window.mlcEditor.testConnection;
