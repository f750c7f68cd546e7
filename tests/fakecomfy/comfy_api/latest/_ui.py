"""Fake UI outputs: what ComfyUI sends the page (the images are kept, not saved)."""


class PreviewImage:
    def __init__(self, image, animated=False, cls=None, **kwargs):
        self.image = image
        self.values = [{"filename": f"preview_{i}.png", "type": "temp"} for i in range(len(image))]

    def as_dict(self):
        return {"images": self.values, "animated": (False,)}


class PreviewText:
    def __init__(self, value, **kwargs):
        self.value = value

    def as_dict(self):
        return {"text": (self.value,)}
