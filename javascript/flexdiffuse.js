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

// gradio 3's sketch tool (the reference masks' editor on A1111, Forge Classic, reForge) sizes
// its drawing canvas when its picture loads: in a closed fold that is 0 x 0, and the picture
// and the strokes stay hidden once the fold opens (gradio-app/gradio#1721). As A1111 does for
// its inpaint editor (imageMaskFix.js), fit the canvases to the picture whenever the page
// changes or the window resizes. gradio 4's editor sizes itself.
(function () {
    function fitMaskEditors() {
        gradioApp()
            .querySelectorAll(".flexdiffuse-mask-editor .touch-none")
            .forEach(function (wrapper) {
                var picture = wrapper.previousElementSibling;
                if (!picture || picture.tagName !== "IMG" || !picture.naturalWidth) {
                    return;
                }
                var scale = Math.min(
                    picture.width / picture.naturalWidth,
                    picture.height / picture.naturalHeight
                );
                if (!scale) {
                    return; // still hidden: fitted when its fold opens
                }
                wrapper.style.width = picture.naturalWidth * scale + "px";
                wrapper.style.height = picture.naturalHeight * scale + "px";
                wrapper.style.left = "0px";
                wrapper.style.top = "0px";
                wrapper.querySelectorAll("canvas").forEach(function (canvas) {
                    canvas.style.width = canvas.style.height = "";
                    canvas.style.maxWidth = canvas.style.maxHeight = "100%";
                    canvas.style.objectFit = "contain";
                });
            });
    }

    onAfterUiUpdate(fitMaskEditors);
    window.addEventListener("resize", fitMaskEditors);
})();
