// The import form's file picker (optional: without scripts, paste the CSV text into the form).
// A CSV file is read as text into the text box; an XLSX file is read as bytes into a hidden base64 field.
(function () {
  'use strict';
  var picker = document.getElementById('import-file');
  var text = document.getElementById('import-content');
  var b64 = document.getElementById('import-content-base64');
  var name = document.getElementById('import-file-name');
  if (!picker || !text || !b64 || !name) return;
  picker.addEventListener('change', function () {
    var file = picker.files && picker.files[0];
    if (!file) return;
    name.value = file.name;
    var reader = new FileReader();
    if (/\.xlsx$/i.test(file.name)) {
      reader.onload = function () {
        var bytes = new Uint8Array(reader.result);
        var binary = '';
        for (var i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
        b64.value = btoa(binary);
        text.value = '';
        text.disabled = true;
      };
      reader.readAsArrayBuffer(file);
    } else {
      reader.onload = function () {
        text.disabled = false;
        text.value = String(reader.result);
        b64.value = '';
      };
      reader.readAsText(file);
    }
  });
})();
