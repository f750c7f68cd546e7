// FlexDiffuse's mapping preview: hovering a prompt token's row outlines, on the guidance
// image, the patch that token maps to. The preview is plain HTML from the server; its rows
// carry data-flexdiffuse-image/-row/-col/-grid, its images are <figure data-image="n">.

(function () {
    function outline(row) {
        var preview = row.closest(".flexdiffuse-preview");
        if (!preview) {
            return;
        }
        preview.querySelectorAll(".flexdiffuse-patch").forEach(function (box) {
            box.style.display = "none";
        });
        if (row.dataset.flexdiffuseRow === undefined) {
            return; // no token, or the image's class token: nothing to outline
        }
        var section = row.closest(".flexdiffuse-section") || preview;
        var figure = section.querySelector(
            '.flexdiffuse-image[data-image="' + row.dataset.flexdiffuseImage + '"]'
        );
        var box = figure && figure.querySelector(".flexdiffuse-patch");
        if (!box) {
            return;
        }
        var size = 100 / Number(row.dataset.flexdiffuseGrid);
        box.style.left = Number(row.dataset.flexdiffuseCol) * size + "%";
        box.style.top = Number(row.dataset.flexdiffuseRow) * size + "%";
        box.style.width = size + "%";
        box.style.height = size + "%";
        box.style.display = "block";
    }

    onUiLoaded(function () {
        gradioApp().addEventListener("mouseover", function (event) {
            var row = event.target.closest && event.target.closest("tr.flexdiffuse-position");
            if (row) {
                outline(row);
            }
        });
    });
})();
