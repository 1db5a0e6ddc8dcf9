/// StylePipeline: image bytes in, stylized image bytes out.
